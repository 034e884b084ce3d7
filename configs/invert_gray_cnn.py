"""Feature inversion of two photos by the wrapped grayscale CNN ``gray_cnn`` (docs/models.md):

    python -m jfv --config=configs/invert_gray_cnn.py --workdir=runs/invert_gray

``gray_cnn`` takes 1-channel images and has RANDOM weights (no training run ships with it): this
shows the pipeline on a grayscale model, not learnt features. The photos are RGB; the network is
given their ITU-R BT.601 luma (``Model.from_rgb``), renders 1-channel images (``decorrelate=False``:
colour decorrelation needs 3 channels) and every PNG is 8-bit grayscale. Expected: images/*.png,
grid.png (rows owl, parrot; columns photo, conv1, relu2, relu3), index.html and manifest.json in
about 45 s on a loaded 2-core CPU; measured: the relative error of the activations ends at
0.006-0.015 (conv1), 0.07-0.08 (relu2) and 0.08-0.10 (relu3), cosines > 0.995.
"""

from configs import vgg16_invert


def get_config():
    c = vgg16_invert.get_config()
    c.model = "gray_cnn"  # random weights: see the docstring
    c.layers = "conv1,relu2,relu3"  # conv1..3, relu1..3 (sown), logits
    c.image_size = 64
    c.decorrelate = False  # colour decorrelation needs 3 channels
    c.steps = 128
    return c
