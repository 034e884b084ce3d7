"""Feature visualisations of a wrapped 1-channel (grayscale) CNN (jfv.models.wrap example).

    python -m jfv --config=configs/gray_cnn_channels.py --workdir=/tmp/jfv_gray

``gray_cnn`` (jfv/models/examples.py) is a 3-conv network on 1-channel images with RANDOM weights
(no training run ships with it), brought in through ``jfv.models.wrap``. The images are 1-channel:
the parameterisation has ``channels=1`` and no colour decorrelation (``decorrelate=False``, which a
1-channel image requires), and the PNGs are 8-bit grayscale. Expected: 8 grayscale PNGs of dark
blobs and speckle textures, sprite.png, index.html and manifest.json in about 15 s on a 2-core CPU;
final objectives from about 0 to 1.3 (measured).
"""

from configs import vgg16_channels


def get_config():
    c = vgg16_channels.get_config()
    c.model = "gray_cnn"  # random weights: see the docstring
    c.layer = "relu3"  # conv1..3, relu1..3 (sown), logits
    c.channels = "0:8"
    c.image_size = 64
    c.decorrelate = False  # colour decorrelation needs 3 channels
    c.steps = 64
    return c
