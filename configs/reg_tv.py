"""Total variation sweep (Mahendran & Vedaldi 2015): 4 VGG16 conv4_3 channels x 4 values of lambda_tv.

    python -m jfv --config=configs/reg_tv.py --workdir=/tmp/jfv_reg_tv

Objective channel + lambda_tv * TV_beta with TV summed over pixels (Lucid's scale, so lambda_tv is
the seed's: refined range -0.001..-0.0001; the seed's figure uses -0.005). One compiled program for
all 16 images. Expected (measured): saturated high-frequency strokes at 0, visibly smoother ones at
-0.005, whose final objective (channel mean + lambda * TV) is ~10-20 lower than at 0 (e.g. channel
48: 150.7 at 0, 130.8 at -0.005); ~2 minutes on a 2-core CPU. For stronger smoothing try
--config.strengths=0,-0.005,-0.01,-0.02; --config.tv_beta=2 for Mahendran & Vedaldi's exponent.
"""

from configs import reg_sweep


def get_config():
    c = reg_sweep.get_config()
    c.regulariser = "tv"
    c.strengths = "0,-0.0001,-0.001,-0.005"
    c.penalty_reduction = "sum"
    c.tv_beta = 1.0
    return c
