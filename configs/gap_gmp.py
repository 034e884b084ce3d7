"""GAP versus GMP CAM heads on frozen VGG16 relu5_3 features of a CIFAR-10 subset (Zhou et al. 2016).

    python -m jfv --config=configs/gap_gmp.py --workdir=/tmp/jfv_gap_gmp

Needs CIFAR-10: ``--config.cifar10_path=PATH`` (the official python or binary release, packed or
extracted: https://www.cs.toronto.edu/~kriz/cifar.html) or $JFV_CIFAR10, else ``../shared`` beside the
repository (or --config.shared_dir=PATH, or $JFV_SHARED) for ``data/cifar10/cifar10-jpeg.tar.gz``. Trains a 3x3 conv + ReLU + global average pool + dense head and
the same head with global max pooling (same init, data order and optimiser) on cached VGG16 features
of 1000 training images (100 per class) upsampled to 112 px (relu5_3 is 7x7), tests on 300 (30 per
class), and writes results.md / results.json (accuracy, CAM centre fraction, extent, deletion /
insertion areas on 30 images), grid.png, index.html and manifest.json.

Expected (measured, docs/attribution.md has the table): test accuracy GAP 0.647, GMP 0.627 (each
+-0.028 binomial s.e.); GAP's CAMs slightly larger in extent (0.77 vs 0.74 of the pixels above 20% of
the max); 437 s on a loaded 2-core CPU, 269 s of it VGG16 feature extraction (cached in
<workdir>/cache/, so a second run with other head settings takes under 3 minutes).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.recipe = "gap_gmp"
    c.shared_dir = ""  # "" = $JFV_SHARED, else ../shared beside the repository
    c.cifar10_path = ""  # CIFAR-10 .tar.gz or folder, in any form ("" = $JFV_CIFAR10, else <shared>/data/cifar10/)
    c.model = "vgg16"  # any model of jfv.models.names() with a spatial layer, built-in or wrapped (gray_cnn)
    c.weights_dir = ""  # "" = $JFV_WEIGHTS_DIR or the repo's weights/
    c.train_per_class = 100  # training images per class: files 0000..k-1 of train/<class>/ (<= 5000)
    c.test_per_class = 30  # test images per class: files 0000..k-1 of test/<class>/ (<= 1000)
    c.image_size = 112  # 32 px upsampled (bilinear) to this, so the layer keeps a map (112 -> 7x7 at relu5_3)
    c.layer = "relu5_3"  # frozen features of `model` the head sits on (conv5_3 after its ReLU, as in the paper)
    c.head_width = 128  # channels of the head's 3x3 conv (the paper: 1024; 128 keeps training ~1 min on a CPU)
    c.epochs = 10  # the loss is ~0.7 after 2 epochs; more mostly overfits 1000 images
    c.batch_size = 64
    c.learning_rate = 1e-3  # Adam
    c.seed = 0  # head init and data order (the same for both heads)
    c.feature_batch = 32  # images per VGG16 call (feature extraction, deletion / insertion)
    c.cache_features = True  # keep the frozen features in <workdir>/cache/*.npz for later runs
    c.faithfulness_per_class = 3  # test images per class for deletion / insertion (0 = skip); VGG16 passes
    c.faithfulness_steps = 4  # curve points - 1
    c.faithfulness_baseline = "blur"  # blur | a number in [0, 1] for removed pixels
    c.examples = 10  # test images shown in grid.png and the gallery (spread over the classes)
    c.overlay_alpha = 0.5
    c.verbose = True  # progress lines on stderr
    return c
