"""A seconds-long MACO run for tests: 2 VGG16 conv3_1 channels, 32 px, 2 crops, 3 steps.

    python -m jfv --config=configs/maco_tiny.py --workdir=/tmp/jfv_maco_tiny

Expected: channels/conv3_1_0003.png, _0005.png and their _alpha.png overlays, listed in manifest.json.
"""

from configs import vgg16_maco


def get_config():
    c = vgg16_maco.get_config()
    c.layer = "conv3_1"
    c.channels = "3,5"
    c.steps = 3
    c.image_size = 32
    c.maco_crops = 2
    c.batch_size = 2
    c.progress = False
    return c
