"""A seconds-long whole-layer job for tests: 6 VGG16 conv3_1 channels, 32 px, 4 steps, groups of 2.

    python -m jfv --config=configs/layer_tiny.py --workdir=/tmp/jfv_layer_tiny
"""

from configs import vgg16_layer


def get_config():
    c = vgg16_layer.get_config()
    c.layers = "conv3_1"
    c.channels = "0:6"
    c.steps = 4
    c.image_size = 32
    c.batch_size = 2
    c.checkpoint_every = 1
    c.progress = False
    return c
