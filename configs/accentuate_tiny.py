"""A seconds-long accentuation for tests: one photo, two VGG16 conv2_1 channels, 32 px, 4 steps.

    python -m jfv --config=configs/accentuate_tiny.py --workdir=/tmp/jfv_accentuate_tiny
"""

from configs import vgg16_accentuate


def get_config():
    c = vgg16_accentuate.get_config()
    c.images = "shared:data/images/openimages/parrot.jpg"
    c.layer = "conv2_1"
    c.reg_layer = "conv1_2"
    c.channels = "3,5"
    c.image_size = 32
    c.steps = 4
    c.eps = 0.05
    c.progress = False
    return c
