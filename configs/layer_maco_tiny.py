"""A seconds-long MACO whole-layer job for tests: 4 VGG16 conv3_1 channels, 32 px, 2 crops, 4 steps, groups of 2.

    python -m jfv --config=configs/layer_maco_tiny.py --workdir=/tmp/jfv_layer_maco_tiny

Expected: channels/conv3_1_0000.png ... _0003.png, each with its _alpha.png overlay, sprite.png,
index.html and manifest.json.
"""

from configs import vgg16_layer_maco


def get_config():
    c = vgg16_layer_maco.get_config()
    c.layers = "conv3_1"
    c.channels = "0:4"
    c.steps = 4
    c.image_size = 32
    c.maco_crops = 2
    c.batch_size = 2
    c.checkpoint_every = 1
    c.progress = False
    return c
