"""The trust measures of an earlier AM run: two-alternative test, plausibility, processing path.

    python -m jfv --config=configs/vgg16_channels.py --workdir=/tmp/jfv_vgg16
    python -m jfv --config=configs/score.py --config.run_dir=/tmp/jfv_vgg16 --workdir=/tmp/jfv_vgg16_scores

Reads the run's manifest.json (a channels or layer run), streams CIFAR-10 test images (50 per class,
from --config.cifar10_path, $JFV_CIFAR10 or the shared folder; upsampled to the visualisations' size:
VGG16 sees 32 px photos blown up, a limitation) through the same model once, and scores every
visualisation:

- channels: the two-alternative test (LPIPS AlexNet, 100 trials, queries from each channel's 20 most /
  least activating images) with its permutation p-value and 95% bootstrap interval (1000 resamples)
  and the swap control (the same test answered with up to 19 other channels' visualisations);
- classes: plausibility (cosine similarity to the class's natural images in the penultimate feature
  space of the model and of ResNet-32/44/56), confidence (the model's own p(class)) and
  transferability (ResNet-32/44/56's p(class) and margins);
- both: the processing path (every layer up to the scored one).

Expected for the default 8 VGG16 conv4_3 channels: scores.csv, scores.md and manifest.json in the
workdir in about 100 s on a 2-core CPU; two-alternative accuracies 0.28-0.75 (mean 0.53), of which
only channels 4 (0.75, p = 0.011) and 6 (0.28, p = 0.034) differ from chance at p < 0.05, none beats
the other channels' visualisations (swap p >= 0.125), and a processing-path deficit of ~0.64
(docs/trust.md has the figures of one run). The natural images are held in memory: 500 at 128 px
take 100 MB. Score CIFAR ResNet-20 classes with --config.run_dir=DIR of configs/cifar_resnet20_class.py
(about 40 s; Lucid's plausibility in ResNet-56's space ~0.83, natural images 0.81, noise 0.42).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.recipe = "score"
    c.run_dir = ""  # the DIR of a finished channels or layer run (its manifest.json and PNGs)
    c.weights_dir = ""  # "" = $JFV_WEIGHTS_DIR or the repo's weights/
    c.dataset = "cifar10"  # cifar10 | a folder of images (or of <class>/ folders of images)
    c.split = "test"  # cifar10: train | test
    c.per_class = 50  # cifar10: images per class (0 = all)
    c.limit = 0  # only the first n natural images (0 = all)
    c.shared_dir = ""  # "" = $JFV_SHARED or ../shared
    c.cifar10_path = ""  # CIFAR-10 .tar.gz or folder, in any form ("" = $JFV_CIFAR10, else <shared>/data/cifar10/)
    c.image_size = 0  # natural images' side (0 = the visualisations' size; references are resized to it)
    c.batch_size = 32  # natural images per compiled call
    c.reduce = "mean"  # an image's score for a channel: mean (the channel objective's) | max of its map
    c.trials = 100  # two-alternative trials per channel (binomial standard error over trials alone <= 0.05)
    c.resamples = 1000  # permutations (p-value) and bootstrap draws (95% interval) per channel; >= 20
    c.swaps = 19  # swap control: other channels' visualisations per channel (min(swaps, C - 1); 0 = off; x the test's LPIPS distances)
    c.tail = 20  # queries from each channel's tail most / least activating natural images
    c.lpips_net = "alexnet"  # LPIPS backbone of the two-alternative test: alexnet | vgg16
    c.path_layers = ""  # processing-path layers, comma-separated ("" = every layer up to the scored one)
    c.similarity = "spearman"  # processing path: spearman (rank correlation) | cosine
    c.path_top = 10  # top natural images each visualisation is compared with
    c.path_random = 50  # random natural images of the baseline
    c.transfer_models = "cifar_resnet32,cifar_resnet44,cifar_resnet56"  # class runs only; "" = none
    c.seed = 0
    return c
