"""Every channel of VGG16 conv4_3 (512) with MACO, resumable: the whole-layer job with transparency maps.

    python -m jfv --config=configs/vgg16_layer_maco.py --workdir=/tmp/jfv_conv4_3_maco

Phase-only Fourier images with the shipped natural-photo magnitude (docs/maco.md), 4 random crops per
step plus noise 0.05, Adam 0.2 on the phase, 128 px, 64 steps, groups of 8. Expected: per channel
channels/conv4_3_<cccc>.png and channels/conv4_3_<cccc>_alpha.png (the image with the accumulated
|d objective / d image| as alpha; the manifest entry's "alpha"), sprite.png (sprite_<layer>.png each when several layers), index.html and
manifest.json. MACO's step with 4 crops costs ~2.5x Lucid's (benchmarks/maco.md), so 512 x 64 is
about 6 h on a 2-core CPU; kill and re-run at will: it resumes to the same bytes, overlays included.
"""

from configs import vgg16_layer


def get_config():
    c = vgg16_layer.get_config()  # every key declared there; these override it
    c.param = "maco"
    c.transforms = "maco"
    c.learning_rate = 0.2  # Adam on the phase, in radians (docs/maco.md)
    c.steps = 64
    return c
