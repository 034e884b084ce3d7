"""Every channel of VGG16 relu5_3 for one photo (DeepVis), and its 9 most activated channels (seed 003).

    python -m jfv --config=configs/activations.py --workdir=/tmp/jfv_activations

The photo is matplotlib's sample grace_hopper.jpg (every install has it); another:
--config.image=../shared/data/images/openimages/owl.jpg. Other layers: --config.layer=relu1_2
(seed 003's "layer 1"), --config.model=alexnet --config.layer=relu5. Expected: input.png, grid.png
(512 maps of 14x14 in 23 columns, each scaled to its own range; dead channels black), top.png (input + 9 maps over it, titled
channel: max), index.html, manifest.json with the top channels and values; a few seconds.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.recipe = "activations"
    c.model = "vgg16"  # jfv.models.names()
    c.pretrained = True  # False: a random init of the same layout
    c.seed = 0  # the init seed when pretrained is False
    c.weights_dir = ""  # "" = $JFV_WEIGHTS_DIR or the repo's weights/
    c.image = ""  # "" = matplotlib's grace_hopper.jpg; else an image file
    c.image_size = 224  # shorter side resized, then centre-cropped
    c.layer = "relu5_3"  # any spatial layer (post-ReLU maps look as DeepVis shows them)
    c.normalise = "channel"  # channel (each map to [0, 1]: every pattern shows) | layer (one scale: weak maps dark, as DeepVis)
    c.columns = 0  # tiles per row (0 = the square root of the channel count, rounded up)
    c.scale = 2  # integer enlargement of each map
    c.top = 9  # most activated channels shown in top.png
    c.reduce = "max"  # max | mean over positions, to rank the channels
    return c
