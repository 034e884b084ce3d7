"""A seconds-long study for tests: 2 experiments x 2 values x 1 VGG16 conv3_1 channel, 32 px, 2 steps.

    python -m jfv --config=configs/regulariser_study_tiny.py --workdir=/tmp/jfv_study_tiny

Natural-patch reference from ``reference_images`` (the test points it at two generated PNGs);
writes every output of configs/regulariser_study.py.
"""

from configs import regulariser_study


def get_config():
    c = regulariser_study.get_config()
    c.layer = "conv3_1"
    c.channels = "3"
    c.experiments = "tv,scale"
    c.grid.tv = "0,-0.001"
    c.grid.scale = "1.0,1.2"
    c.reference = "natural"
    c.image_size = 32
    c.steps = 2
    c.seeds = 2
    c.score_batch = 8
    c.progress = False
    return c
