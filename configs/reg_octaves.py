"""Octave scale-up: 4 VGG16 conv4_3 channels x 3 octave factors (the seed's range 1.0-1.2).

    python -m jfv --config=configs/reg_octaves.py --workdir=/tmp/jfv_reg_octaves

Three stages of 24 steps each at 64, 64v and 64v^2 pixels (v = 1.0, 1.1, 1.2), the pixels resized
bilinearly between stages and Adam restarted. Image sizes change, so the run compiles once per
distinct stage size (64, 70, 77, 92: 4 programs). Expected: final images of 64, 77 and 92 px (the
contact sheet centres them on white), larger structures as v grows, in ~4-6 minutes on a 2-core CPU.
"""

from configs import reg_sweep


def get_config():
    c = reg_sweep.get_config()
    c.regulariser = "octaves"
    c.strengths = "1.0,1.1,1.2"
    c.octaves = 3
    c.steps = 24  # per octave
    return c
