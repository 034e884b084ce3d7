"""Yosinski et al. 2015's Table 1: 4 VGG16 conv4_3 channels x the four regularisation presets.

    python -m jfv --config=configs/reg_yosinski.py --workdir=/tmp/jfv_reg_yosinski

Pixel parameterisation, Adam 0.05, then Yosinski's image steps in his order (decay, blur every k,
zero small-norm pixels, zero small-contribution pixels) with each row of Table 1:
blur_norm (0, 0.5, 4, 50, 0), decay_norm (0.3, 0, 0, 20, 0), decay_blur (1e-4, 1.0, 4, 0, 0),
blur_contribution (0, 0.5, 4, 0, 90). All four presets render as one compiled program; pick some with
--config.strengths=decay_blur or --config.strengths=blur_norm,blur_contribution. Expected (measured):
16 PNGs in ~2-3 minutes on a 2-core CPU; per channel, blur_norm gives saturated strokes, decay_norm a
faint pattern on grey (objective about half), decay_blur smooth flowing structures, and
blur_contribution a few scattered pixels on grey (90% of pixels zeroed each step, objective near 0).
"""

from configs import reg_sweep


def get_config():
    c = reg_sweep.get_config()
    c.regulariser = "yosinski"
    c.strengths = "all"  # or a comma list of: blur_norm, decay_norm, decay_blur, blur_contribution
    return c
