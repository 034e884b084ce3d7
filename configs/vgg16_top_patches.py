"""The 9 CIFAR-10 test images (upscaled to 64 px) that most activate every channel of VGG16 conv5_3,
with their receptive-field patches and Zeiler & Fergus deconvnet projections; resumable.

    python -m jfv --config=configs/vgg16_top_patches.py --workdir=/tmp/jfv_top_patches
    python -m jfv --config=configs/vgg16_top_patches.py --workdir=DIR --config.layers=conv4_3,conv5_3
    python -m jfv --config=configs/vgg16_top_patches.py --workdir=DIR \
        --config.dataset=../shared/data/images/openimages --config.image_size=224 --config.k=4
    python -m jfv --config=configs/vgg16_top_patches.py --workdir=DIR \
        --config.cifar10_path=~/data/cifar-10-python.tar.gz    # the official release (or its folder)
    python -m jfv --config=configs/vgg16_top_patches.py --workdir=DIR --config.image_size=224 \
        --config.dataset=~/imagenet/val --config.labels_file=~/imagenet/LOC_val_solution.csv

CIFAR-10 comes from cifar10_path, else $JFV_CIFAR10, else the shared folder's JPEG copy; ImageNet's
validation images as wnid class folders or a flat folder with labels_file (docs/analysis.md, Datasets).

One pass over the 10,000 test images ranks every channel's images by the maximum (and the mean) of its
map; then each of the 512 x 9 hits gets its patch and projection. Expected: topk.npz, scores.npz,
patches/conv5_3/<cccc>/{max,mean}_<r>.png (and max_<r>_proj.png), sheets/conv5_3_<cccc>_{max,mean}.png (Fig. 2:
projections left, patches right), layers/conv5_3.json, blocks.png (seed 003's best feature map per
block, on Grace Hopper's photo), index.html and manifest.json. On a 2-core CPU under load the pass
runs at about 15-25 images/s, ~10 minutes, and the patches about as long again (benchmarks/
top_patches.md). Kill it at any time and run the same command again: it resumes.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.recipe = "top_patches"
    c.model = "vgg16"  # jfv.models.names(); projections need a switches deconvnet (vgg16, alexnet, gray_cnn)
    c.weights_dir = ""  # "" = $JFV_WEIGHTS_DIR or the repo's weights/
    c.layers = "conv5_3"  # one or more spatial layers, comma-separated
    c.channels = "all"  # channels that get patches: all | a:b | a list (the pass ranks every channel)
    c.dataset = "cifar10"  # cifar10 | a folder of images (or of <class>/ folders of images)
    c.split = "test"  # cifar10: train | test
    c.per_class = 0  # cifar10: images per class (0 = all: 1000 test, 5000 train)
    c.limit = 0  # only the first n images of the dataset (0 = all)
    c.shared_dir = ""  # "" = $JFV_SHARED or ../shared (where the CIFAR-10 archive is)
    c.cifar10_path = ""  # CIFAR-10 .tar.gz or folder, in any form ("" = $JFV_CIFAR10, else <shared>/data/cifar10/)
    c.labels_file = ""  # a flat folder's ImageNet val labels: LOC_val_solution.csv or the devkit's ground truth
    c.image_size = 64  # shorter side resized (bicubic), then centre-cropped
    c.k = 9  # top images per channel
    c.reductions = "max,mean"  # score of an image: max and/or mean of the channel's map over positions
    c.batch_size = 32  # images per compiled call
    c.checkpoint_every = 50  # batches between checkpoints of the pass (0: only on SIGTERM/SIGINT)
    c.prefetch_batches = 2  # batches decoded ahead in a background thread
    c.workers = 0  # grain worker processes that read and decode (0: the background thread; see benchmarks/loader.md)
    c.devices = 0  # shard each batch over local devices: 0 the default device, n the first n, -1 all (batch_size a multiple)
    # Several processes (hosts): each reads every num_processes-th image, process 0 combines; DIR shared by all.
    c.distributed = False  # True: jax.distributed (auto-detected on TPU pods, SLURM, Open MPI; else the keys below)
    c.coordinator_address = ""  # HOST:PORT of process 0
    c.num_processes = 0
    c.process_id = -1
    c.group_size = 64  # channels per finished piece of the patch phase (the unit of resumption)
    c.project = "max"  # the reductions whose hits get deconvnet projections ("" none; "max,mean" both)
    c.project_batch = 16  # hits per compiled deconvnet call
    c.clip = True  # True: the pixels the unit sees; False: the whole receptive field, mean colour outside
    c.patch_px = 0  # side of the patch pictures (0 = the receptive field's size, at most image_size)
    c.block_image = ""  # the best-feature-map-per-block figure's photo ("" = matplotlib's grace_hopper.jpg)
    c.block_image_size = 224
    c.resume = True  # False: move DIR's earlier outputs to DIR.old-<time> and start over
    c.discard_state = False  # True: drop an unreadable pass checkpoint and start the pass again
    c.progress = True
    return c
