"""Every channel of a wrapped 1-channel (grayscale) CNN's ``relu2`` for one photo, and its 4 most
activated channels.

    python -m jfv --config=configs/activations_gray_cnn.py --workdir=/tmp/jfv_activations_gray

``gray_cnn`` (jfv/models/examples.py) has RANDOM weights (no training run ships with it). The photo
(matplotlib's grace_hopper.jpg) is given to the model as its ITU-R BT.601 luma
(``Model.from_rgb``); ``input.png`` is that grayscale image as an 8-bit grayscale PNG. Expected:
input.png, grid.png (32 maps of 32x32), top.png (the grey input and 4 maps over it), index.html and
manifest.json in a few seconds.
"""

from configs import activations


def get_config():
    c = activations.get_config()
    c.model = "gray_cnn"  # random weights: see the docstring
    c.image_size = 64
    c.layer = "relu2"  # conv1..3, relu1..3 (spatial), logits
    c.top = 4
    c.scale = 2
    return c
