"""Deconvnet and guided-backprop reconstructions of VGG16 (ImageNet weights) from every pool layer,
deepest first (seed 003's "Activation of VGG16 deconvnet on each layer from the deepest one"), with
the checkerboard energy of each (docs/checkerboard.md):

    python -m jfv --config=configs/checkerboard.py --workdir=runs/checkerboard

Three photos from ``../shared/data/images/openimages`` (or --config.shared_dir=PATH, or
$JFV_SHARED) at 224 px; other images: --config.images=PATH[,PATH...] (files or folders). Expected:
figure.png (inputs, then pool5 .. pool1 rows; columns owl, parrot, cat x {deconvnet, guided
backprop}), grid.png, table.md, results.csv, index.html, manifest.json; about 2 minutes on a 2-core
CPU. Deconvnet reconstructions hold more power on the stride-2 grid than guided backprop's at every
layer (table in docs/checkerboard.md).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.recipe = "checkerboard"
    c.model = "vgg16"  # any model whose module has a relu field: jfv.models.names()
    c.pretrained = True  # False: a random init of the same layout (seed below)
    c.seed = 0  # the init seed when pretrained is False
    c.weights_dir = ""  # "" = $JFV_WEIGHTS_DIR or the repo's weights/
    c.layers = "pool5,pool4,pool3,pool2,pool1"  # spatial layers, shown and tabled deepest first; "" = every pool* layer
    c.dataset = "files"  # files (images below) | cifar10 (test images from the shared folder)
    # comma-separated files or folders; "shared:REL" is REL inside the shared folder; "" = grace_hopper.jpg
    c.images = ("shared:data/images/openimages/owl.jpg,shared:data/images/openimages/parrot.jpg,"
                "shared:data/images/openimages/cat.bmp")
    c.max_images = 0  # at most this many images (0 = all; cifar10: 0 = one per class)
    c.image_size = 224  # shorter side resized, then centre-cropped (cifar10: 32)
    c.shared_dir = ""  # "" = $JFV_SHARED, else ../shared beside the repository
    c.cifar10_path = ""  # CIFAR-10 .tar.gz or folder, in any form ("" = $JFV_CIFAR10, else <shared>/data/cifar10/)
    c.reduce = "square"  # square: the strongest channel's whole map (seed 003) | max: its strongest activation (Zeiler & Fergus)
    c.stride = 2  # the checkerboard grid's period in pixels (>= 2); each layer's own total stride is measured too
    c.gain = 1.0  # display gain of the signed reconstructions (0 grey, largest magnitude black/white)
    return c
