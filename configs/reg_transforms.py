"""Transformation robustness sweep: 4 VGG16 conv4_3 channels x 4 scale ranges (the seed's 1.0-1.4).

    python -m jfv --config=configs/reg_transforms.py --workdir=/tmp/jfv_reg_transforms

Each step zooms by a factor uniform in [1/v, v], v in 1.0, 1.1, 1.2, 1.4, one compiled program.
Other families: --config.regulariser=rotate --config.strengths=0,15,45,180 (uniform in [-v, v] degrees,
one program) or --config.regulariser=jitter --config.strengths=8,16,32 (a random crop v pixels smaller:
the model sees a (size - v)-pixel image, so one compilation per value; keep v < image_size - 32).
Expected: 16 PNGs, less high-frequency noise as the range grows, in ~2-4 minutes on a 2-core CPU.
"""

from configs import reg_sweep


def get_config():
    c = reg_sweep.get_config()
    c.regulariser = "scale"
    c.strengths = "1.0,1.1,1.2,1.4"
    return c
