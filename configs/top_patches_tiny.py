"""A seconds-long top-patches job for tests: VGG16 conv3_1 and conv3_3, 8 channels with patches,
CIFAR-10 test (3 per class) at 32 px, top 4, batches of 4, a checkpoint every 2 batches.

    python -m jfv --config=configs/top_patches_tiny.py --workdir=/tmp/jfv_top_patches_tiny
"""

from configs import vgg16_top_patches


def get_config():
    c = vgg16_top_patches.get_config()
    c.layers = "conv3_1,conv3_3"
    c.channels = "0:8"
    c.per_class = 3
    c.image_size = 32
    c.k = 4
    c.batch_size = 4
    c.checkpoint_every = 2
    c.prefetch_batches = 0
    c.group_size = 4
    c.project = "max,mean"
    c.project_batch = 8
    c.block_image_size = 64
    c.progress = False
    return c
