"""A seconds-long checkerboard run for tests: VGG16 pool2 and pool1 of the default photo at 32 px.

    python -m jfv --config=configs/checkerboard_tiny.py --workdir=/tmp/jfv_checkerboard_tiny
"""

from configs import checkerboard


def get_config():
    c = checkerboard.get_config()
    c.images = ""  # matplotlib's grace_hopper.jpg: no shared folder needed
    c.image_size = 32
    c.layers = "pool1,pool2"  # shown deepest first: pool2, pool1
    return c
