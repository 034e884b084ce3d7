"""A seconds-long inversion for tests: one photo, VGG16 conv1_2, 32 px, 4 steps.

    python -m jfv --config=configs/invert_tiny.py --workdir=/tmp/jfv_invert_tiny
"""

from configs import vgg16_invert


def get_config():
    c = vgg16_invert.get_config()
    c.images = "shared:data/images/openimages/owl.jpg"
    c.layers = "conv1_2,conv2_1"
    c.image_size = 32
    c.steps = 4
    c.progress = False
    return c
