"""An atlas of a top-patches run: one static HTML site to browse layer by layer, channel by channel,
with each channel's activation maximisation image beside its top dataset patches, their deconvnet
projections and a histogram of its activations over the dataset.

    python -m jfv --config=configs/vgg16_top_patches.py --workdir=/tmp/jfv_top_patches
    python -m jfv --config=configs/vgg16_layer.py --workdir=/tmp/jfv_conv5_3 --config.layers=conv5_3
    python -m jfv --config=configs/atlas.py --workdir=/tmp/jfv_atlas \
        --config.top_patches_dir=/tmp/jfv_top_patches --config.am_dir=/tmp/jfv_conv5_3

Expected: index.html (open it from the file system; no server), conv5_3/index.html (a card per
channel, a channel search box) and conv5_3/0000.html ... 0511.html (AM image, histograms of max and
mean over the 10,000 images with the top-9 threshold, top 9 patches with projections, previous/next
channel and layer), the pictures copied beside them, manifest.json; a few seconds. An am_dir of
another model is refused, naming both.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.recipe = "atlas"
    c.top_patches_dir = ""  # the workdir of a finished top_patches run (required)
    c.am_dir = ""  # the workdir of a layer or channels run of the same model ("" = no AM images)
    c.layers = ""  # "" = every layer of the top-patches run; else a comma-separated subset
    c.bins = 30  # histogram bars
    return c
