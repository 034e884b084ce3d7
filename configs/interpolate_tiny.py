"""A seconds-long interpolation run for tests: 2 VGG16 conv3_1 pairs, 3 frames, 32 px, 3 steps.

    python -m jfv --config=configs/interpolate_tiny.py --workdir=/tmp/jfv_interpolate_tiny

Expected: strips/conv3_1_0003_0005.png and strips/conv3_1_0007_0001.png (3 frames of 32 px each),
sprite.png, index.html and manifest.json.
"""

from configs import vgg16_interpolate


def get_config():
    c = vgg16_interpolate.get_config()
    c.layer = "conv3_1"
    c.pairs = "3-5,7-1"
    c.frames = 3
    c.alignment_layers = "conv2_1,conv3_1"
    c.steps = 3
    c.image_size = 32
    c.progress = False
    return c
