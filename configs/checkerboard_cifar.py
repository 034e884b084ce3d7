"""Deconvnet and guided-backprop reconstructions of the CIFAR-10 convnet jfv trains, from each pool
layer deepest first, with their checkerboard energy (docs/checkerboard.md).

Train the network first (``configs/cifar10_train.py``), then point ``weights_dir`` at that
training workdir (it holds ``cifar_convnet/``):

    python -m jfv --config=configs/cifar10_train.py --workdir=runs/cifar10
    python -m jfv --config=configs/checkerboard_cifar.py --workdir=runs/checkerboard_cifar \\
        --config.weights_dir=runs/cifar10

Random weights instead: --config.pretrained=False. Images: the first CIFAR-10 test image of the
first ``max_images`` classes (airplane, automobile, bird, cat), read from
``../shared/data/cifar10/cifar10-jpeg.tar.gz`` (or --config.shared_dir=PATH, or $JFV_SHARED), at
their 32 px. Expected: the files configs/checkerboard.py writes, a row per pool layer (default
widths: pool3 S=8, pool2 S=4, pool1 S=2); about 20 seconds, most of it reading the archive.
"""

from configs import checkerboard


def get_config():
    c = checkerboard.get_config()
    c.model = "cifar_convnet"
    c.weights_dir = "runs/cifar10"  # the training workdir (holds cifar_convnet/); see the docstring
    c.layers = ""  # every pool layer (pool3, pool2, pool1 for the default widths; fewer for fewer blocks)
    c.dataset = "cifar10"
    c.images = ""
    c.max_images = 4
    c.image_size = 32
    c.gain = 1.0
    return c
