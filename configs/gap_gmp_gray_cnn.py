"""GAP versus GMP CAM heads on a wrapped 1-channel CNN (``gray_cnn``, jfv.models.wrap's example).

    python -m jfv --config=configs/gap_gmp_gray_cnn.py --workdir=/tmp/jfv_gap_gmp_gray

``gray_cnn`` (jfv/models/examples.py) has RANDOM weights (no training run ships with it): it shows
that the GAP/GMP head sits on any model's layer, a wrapped one included, and that a grayscale model
sees the CIFAR-10 images' BT.601 luma. The heads train on its ``relu3`` maps (8x8 at 32 px) of 40
training images and are tested on 20. Expected: every output of configs/gap_gmp.py (results.md with
accuracies near chance, 0.1-0.3, since the features are random; grayscale inputs beside coloured
CAM overlays in grid.png), in about 30 s on a 2-core CPU.
"""

from configs import gap_gmp


def get_config():
    c = gap_gmp.get_config()
    c.model = "gray_cnn"  # random weights: see the docstring
    c.layer = "relu3"  # conv1..3, relu1..3 (sown), logits; relu3 is 8x8 at 32 px
    c.image_size = 32  # CIFAR-10's own size (no upsampling)
    c.train_per_class = 4
    c.test_per_class = 2
    c.head_width = 8
    c.epochs = 3
    c.batch_size = 16
    c.feature_batch = 20
    c.cache_features = False
    c.faithfulness_per_class = 1
    c.faithfulness_steps = 2
    c.examples = 3
    c.verbose = False
    return c
