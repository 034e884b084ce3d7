"""The batch norm x padding study in seconds, for tests: 1 epoch of tiny convnets on 20 images a class.

    python -m jfv --config=configs/cifar10_bn_padding_tiny.py --workdir=/tmp/jfv_bn_padding_tiny
"""

from configs import cifar10_bn_padding


def get_config():
    c = cifar10_bn_padding.get_config()
    c.widths = "8,16"
    c.train_per_class = 20
    c.test_per_class = 5
    c.epochs = 1
    c.batch_size = 50
    c.eval_batch_size = 50
    c.images = 3
    c.top = 2
    c.progress = False
    return c
