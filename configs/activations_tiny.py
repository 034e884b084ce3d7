"""A seconds-long activations run for tests: VGG16 relu3_3 on the default photo at 64 px, top 4.

    python -m jfv --config=configs/activations_tiny.py --workdir=/tmp/jfv_activations_tiny
"""

from configs import activations


def get_config():
    c = activations.get_config()
    c.image_size = 64
    c.layer = "relu3_3"
    c.top = 4
    c.scale = 1
    return c
