"""L2 sweep: 4 VGG16 conv4_3 channels x 4 values of lambda_L2 (the seed's range and -0.005).

    python -m jfv --config=configs/reg_l2.py --workdir=/tmp/jfv_reg_l2

Objective channel + lambda_L2 * ||x - 0.5||_2 with Lucid's L2 (the root of the sum of squares), so
lambda_L2 is the seed's (refined range -0.01..-0.001; the figure uses -0.005). One compiled program.
Expected: 16 images barely changing with lambda (the seed finds L2 the weakest regulariser), in
~2-4 minutes on a 2-core CPU; --config.penalty_reduction=sum --config.strengths=0,-1e-4,-1e-3,-1e-2
penalises the squared norm instead, much more strongly.
"""

from configs import reg_sweep


def get_config():
    c = reg_sweep.get_config()
    c.regulariser = "l2"
    c.strengths = "0,-0.001,-0.005,-0.01"
    c.penalty_reduction = "norm"
    c.penalty_constant = 0.5
    return c
