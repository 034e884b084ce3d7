"""Batch norm x padding: the 2x2 grid of CIFAR-10 convnets, one seed, one budget (Berthier & Mantoux).

    python -m jfv --config=configs/cifar10_bn_padding.py --workdir=/tmp/jfv_bn_padding

Trains four two-block convnets (widths 32,128; layer 4 is the second block's second conv) with
batch norm on / off and zero padding on / off, each as a resumable ``train`` run in
``<workdir>/bn<0|1>_pad<0|1>/``, then writes table.md (test accuracy, training time) and layer1.png /
layer4.png (the most activated filters of layers 1 and 4 for the same ten test images).
Two blocks because without padding every 3x3 conv loses 2 pixels: at 32 px a third block would
have none left. The learning rate is the largest the network without batch norm trains at here,
shared by all four (benchmarks/train.md has the figures).
"""

from configs import cifar10_train


def get_config():
    c = cifar10_train.get_config()
    c.recipe = "train_study"
    c.widths = "32,128"
    c.whiten_split = False  # a linear first layer: conv1 composed with the whitening is an RGB filter
    c.epochs = 4
    c.batch_size = 512
    c.learning_rate = 0.2
    c.bias_lr_scale = 1.0
    c.freeze_bn_scale = False
    c.am_steps = 0  # first-layer filter snapshots only
    c.images = 10  # test images shown (one per class first)
    c.top = 4  # most activated filters shown per image, layer and variant
    c.layers = "relu1,relu4"
    return c
