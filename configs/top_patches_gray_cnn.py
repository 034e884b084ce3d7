"""Top patches of a wrapped 1-channel (grayscale) CNN: CIFAR-10 test images as their ITU-R BT.601
luma, every channel of ``relu2`` and ``relu3`` ranked, 8 channels with patches and projections.

    python -m jfv --config=configs/top_patches_gray_cnn.py --workdir=/tmp/jfv_top_patches_gray
    python -m jfv --config=configs/gray_cnn_channels.py --workdir=/tmp/jfv_gray --config.image_size=32
    python -m jfv --config=configs/atlas.py --workdir=/tmp/jfv_atlas_gray \
        --config.top_patches_dir=/tmp/jfv_top_patches_gray --config.am_dir=/tmp/jfv_gray

``gray_cnn`` (jfv/models/examples.py) has RANDOM weights (no training run ships with it): this shows
that a wrapped n-channel model runs through the dataset recipes, not what a trained network has
learnt. The dataset is RGB; ``Model.from_rgb`` gives the model each image's luma
``0.299 R + 0.587 G + 0.114 B``, and the patches, projections and sheets are 8-bit grayscale PNGs.
``gray_cnn`` declares its plain conv/ReLU/max-pool stack, so its hits get Zeiler & Fergus deconvnet
projections with explicit switches, and blocks.png shows the best feature map per block. Expected:
every output of configs/vgg16_top_patches.py for 30 images in about 25 s on a 2-core CPU; then the
atlas in a few seconds (relu3 channels 0-7 with AM images).
"""

from configs import vgg16_top_patches


def get_config():
    c = vgg16_top_patches.get_config()
    c.model = "gray_cnn"  # random weights: see the docstring
    c.layers = "relu2,relu3"
    c.channels = "0:8"
    c.per_class = 3
    c.image_size = 32
    c.k = 4
    c.batch_size = 10
    c.group_size = 8
    c.project = "max,mean"
    c.block_image_size = 32
    c.progress = False
    return c
