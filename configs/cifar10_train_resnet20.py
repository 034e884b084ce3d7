"""Train He et al.'s CIFAR ResNet-20 from scratch with the same data, augmentation and loop.

    python -m jfv --config=configs/cifar10_train_resnet20.py --workdir=/tmp/jfv_train_resnet20

The schedule is the paper's recipe compressed: SGD with momentum 0.9, weight decay 5e-4 (1e-4 in
the paper), batch 128 at learning rate 0.1, here with a cosine decay over ``epochs``. The trained
network is ``<workdir>/cifar_resnet20`` (``--config.model=cifar_resnet20 --config.weights_dir=<workdir>``).
"""

from configs import cifar10_train


def get_config():
    c = cifar10_train.get_config()
    c.arch = "cifar_resnet20"
    c.epochs = 30
    c.batch_size = 128
    c.learning_rate = 0.1
    c.schedule = "cosine"
    c.warmup = 0.02
    c.momentum = 0.9
    c.weight_decay = 5e-4
    c.bias_lr_scale = 1.0
    c.freeze_bn_scale = False
    c.label_smoothing = 0.0
    c.translate = 4  # He et al.: 4-pixel padding and a random 32x32 crop
    return c
