"""First-layer filters of AlexNet as one grid, normalised per filter (seed 002's 64 x 3 x 11 x 11).

    python -m jfv --config=configs/filters.py --workdir=/tmp/jfv_filters

Other models: --config.model=vgg16 (64 x 3 x 3 x 3), --config.model=cifar_resnet20 (16 x 3 x 3 x 3,
after converting it: docs/models.md), --config.model=resnet18 --config.pretrained=False (random
7 x 7 filters: no ImageNet ResNet weights can be had here). Expected: filters.png, 8 x 8 tiles of
44 px (11 px x 4) with oriented edges, gratings and colour blobs; index.html and manifest.json
(kernel shape, filter norms); a few seconds.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.recipe = "filters"
    c.model = "alexnet"  # jfv.models.names()
    c.pretrained = True  # False: a random init of the same layout (for models without weights here)
    c.seed = 0  # the init seed when pretrained is False
    c.weights_dir = ""  # "" = $JFV_WEIGHTS_DIR or the repo's weights/
    c.normalise = "filter"  # filter (each tile to [0, 1], as the seeds) | layer (one range for the bank)
    c.columns = 8  # tiles per row (0 = the square root of the count, rounded up)
    c.scale = 0  # integer enlargement (0 = about 40 px a tile)
    c.pad = 1  # white pixels between tiles
    return c
