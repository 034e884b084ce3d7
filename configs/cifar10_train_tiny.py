"""A seconds-long training run for tests: 2 epochs of a narrow convnet on 20 images per class.

    python -m jfv --config=configs/cifar10_train_tiny.py --workdir=/tmp/jfv_train_tiny
"""

from configs import cifar10_train


def get_config():
    c = cifar10_train.get_config()
    c.widths = "8,16"
    c.train_per_class = 20
    c.test_per_class = 5
    c.epochs = 2
    c.batch_size = 50
    c.learning_rate = 0.2
    c.bias_lr_scale = 4.0
    c.flip = "alternate"  # so the recipe and resume tests cover the alternating flip
    c.small_epochs = 1  # and progressive resizing: epoch 1 on 24 px crops
    c.whiten_bias_epochs = 1  # and the split whitening's bias held from epoch 2
    c.am_steps = 4
    c.eval_batch_size = 50
    c.progress = False
    return c
