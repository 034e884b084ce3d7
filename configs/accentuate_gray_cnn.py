"""Feature accentuation of two photos towards four channels of the wrapped grayscale CNN ``gray_cnn``
(docs/models.md):

    python -m jfv --config=configs/accentuate_gray_cnn.py --workdir=runs/accentuate_gray

``gray_cnn`` takes 1-channel images and has RANDOM weights (no training run ships with it): this
shows the pipeline on a grayscale model, not learnt features. Each rendering starts from the photo's
ITU-R BT.601 luma (``Model.from_rgb``), a 1-channel image (``decorrelate=False``: colour
decorrelation needs 3 channels), and every PNG is 8-bit grayscale. Expected: images/*.png, grid.png
(rows owl, parrot; columns seed, channels 0-3 of relu3), index.html and manifest.json in about 30 s
on a loaded 2-core CPU; measured: each channel's mean activation rises from 0.02-0.41 on the seed to
0.16-0.97 while every pixel stays within eps = 0.1 of it.
"""

from configs import vgg16_accentuate


def get_config():
    c = vgg16_accentuate.get_config()
    c.model = "gray_cnn"  # random weights: see the docstring
    c.layer = "relu3"  # conv1..3, relu1..3 (sown), logits
    c.reg_layer = "relu2"
    c.channels = "0:4"
    c.image_size = 64
    c.decorrelate = False  # colour decorrelation needs 3 channels
    c.steps = 128
    return c
