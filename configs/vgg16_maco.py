"""MACO feature visualisations of 8 VGG16 conv4_3 channels, with transparency maps.

    python -m jfv --config=configs/vgg16_maco.py --workdir=/tmp/jfv_maco

Phase-only Fourier images whose magnitude is the shipped natural-photo spectrum (jfv/optvis/parameterisations/spectrum.py),
4 random crops per step (side 0.5-0.8 of the 128 px image, resized to 128 px) plus noise 0.05,
Adam 0.2 on the phase, 64 steps (Fel et al. 2023; docs/maco.md). Expected: per channel
channels/conv4_3_<cccc>.png (a natural-contrast texture with no grey haze) and
channels/conv4_3_<cccc>_alpha.png (the same with the accumulated |d objective / d image| as
alpha: opaque where the channel looked), sprite.png, index.html and manifest.json (each entry's
"alpha" names its overlay) in about 7 minutes on a 2-core CPU (426 s measured under load ~4.5;
4 crops cost ~2.5x Lucid's step). Measured final objectives 4.9-34 (channel 6: 34, fish scales),
lower than Lucid's: the fixed magnitude forbids high-frequency energy.
Compare with configs/vgg16_channels.py: same channels, Lucid's parameterisation.
"""

from configs import vgg16_channels


def get_config():
    c = vgg16_channels.get_config()  # every key declared there; these override it
    c.param = "maco"
    c.transforms = "maco"
    c.learning_rate = 0.2  # Adam on the phase, in radians (docs/maco.md)
    return c
