"""A seconds-long run for tests and smoke checks: 2 VGG16 conv3_1 channels, 32 px, 4 steps.

    python -m jfv --config=configs/tiny.py --workdir=/tmp/jfv_tiny
"""

from configs import vgg16_channels


def get_config():
    c = vgg16_channels.get_config()
    c.layer = "conv3_1"
    c.channels = "3,5"
    c.steps = 4
    c.image_size = 32
    c.batch_size = 2
    c.progress = False
    return c
