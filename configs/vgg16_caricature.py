"""Caricatures of two photos at three VGG16 layers (Lucid's caricature recipe; docs/inversion.md):

    python -m jfv --config=configs/vgg16_caricature.py --workdir=runs/caricature

As configs/vgg16_invert.py, but each rendering maximises the dot product of its activations with the
photo's times the cosine to the power 1 (``objectives.caricature``), so it exaggerates what the layer
sees in the photo. Expected: the same files in about 5 minutes on a 2-core CPU; dot ratios of 2.5-8
(the rendering goes further along the photo's activations than the photo itself, more so with
depth) with cosines of 0.7-0.9 (docs/inversion.md).
"""

from configs import vgg16_invert


def get_config():
    c = vgg16_invert.get_config()
    c.mode = "caricature"
    c.cossim_pow = 1.0
    return c
