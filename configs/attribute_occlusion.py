"""Zeiler & Fergus's occlusion sensitivity alone: a grey 32 px square, stride 16, on VGG16.

    python -m jfv --config=configs/attribute_occlusion.py --workdir=/tmp/jfv_occlusion

Target: each image's strongest channel of relu5_3 (its summed map). Expected: one heatmap overlay per
image (13 x 13 window positions at 224 px, all run as one batched, chunked computation), grid.png,
index.html and manifest.json with the map's deletion / insertion areas, in about a minute on a
2-core CPU.
"""

from configs import attribute_vgg16_channel


def get_config():
    c = attribute_vgg16_channel.get_config()
    c.methods = "occlusion"
    c.batch_size = 13
    return c
