"""A seconds-long GAP/GMP run for tests: 40 train / 20 test CIFAR-10 images at 48 px (relu5_3 3x3).

    python -m jfv --config=configs/gap_gmp_tiny.py --workdir=/tmp/jfv_gap_gmp_tiny

Expected: every output of configs/gap_gmp.py; accuracies are near chance (0.1-0.3) at this size.
"""

from configs import gap_gmp


def get_config():
    c = gap_gmp.get_config()
    c.train_per_class = 4
    c.test_per_class = 2
    c.image_size = 48
    c.head_width = 16
    c.epochs = 3
    c.batch_size = 16
    c.feature_batch = 20
    c.cache_features = False
    c.faithfulness_per_class = 1
    c.faithfulness_steps = 1
    c.examples = 3
    c.verbose = False
    return c
