"""Attribution on a wrapped 1-channel (grayscale) CNN: class 3 of ``gray_cnn`` on Grace Hopper's photo.

    python -m jfv --config=configs/attribute_gray_cnn.py --workdir=/tmp/jfv_attr_gray

``gray_cnn`` (jfv/models/examples.py) has RANDOM weights (no training run ships with it); it shows
that every method runs on a model brought in with ``jfv.models.wrap``, including deconvnet and guided
backprop, which swap the module's ``relu`` field. The RGB photo is converted to grayscale (BT.601
luma) for the 1-channel model. Expected: overlays/*.png (grayscale input and projections, coloured
heatmaps), grid.png (1 row x 8 columns), index.html and manifest.json with deletion / insertion
areas, in under a minute on a 2-core CPU.
"""

from configs import attribute_vgg16_channel


def get_config():
    c = attribute_vgg16_channel.get_config()
    c.model = "gray_cnn"  # random weights: see the docstring
    c.image_size = 64
    c.target = "class"
    c.channel = 3  # a class of the random 10-class head
    c.grad_cam_layer = "relu2"
    c.occlusion_window = 16
    c.occlusion_stride = 8
    return c
