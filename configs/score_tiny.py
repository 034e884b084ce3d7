"""A seconds-long scoring for tests: the trust measures of a configs/tiny.py run (VGG16 conv3_1
channels 3 and 5, 32 px) against 40 CIFAR-10 test images (4 per class), 20 trials, tails of 5,
200 resamples of the p-value and interval.

    python -m jfv --config=configs/tiny.py --workdir=/tmp/jfv_tiny
    python -m jfv --config=configs/score_tiny.py --config.run_dir=/tmp/jfv_tiny --workdir=/tmp/jfv_tiny_scores
"""

from configs import score


def get_config():
    c = score.get_config()
    c.per_class = 4
    c.batch_size = 20
    c.trials = 20
    c.resamples = 200
    c.tail = 5
    c.path_layers = "conv1_1,conv2_1,conv3_1"
    c.path_top = 3
    c.path_random = 8
    return c
