"""Train the CIFAR-10 convnet from scratch and watch it learn (Berthier & Mantoux's training study).

    python -m jfv --config=configs/cifar10_train.py --workdir=/tmp/jfv_train

Needs CIFAR-10: ``--config.cifar10_path=PATH`` (the official python or binary release, packed or
extracted: https://www.cs.toronto.edu/~kriz/cifar.html) or $JFV_CIFAR10, else ``../shared`` beside the
repository (or --config.shared_dir=PATH, or $JFV_SHARED) for ``data/cifar10/cifar10-jpeg.tar.gz``. Re-running the same command on the same workdir resumes from
the last checkpoint. The trained network is ``<workdir>/cifar_convnet``: use it in any recipe with
``--config.model=cifar_convnet --config.weights_dir=<workdir>``.

The defaults are airbench's recipe (Jordan 2024) at half its width, with its hyperparameters moved
from a summed to a mean loss: airbench's first layer (2x2 patch whitening, both signs, a bias
trained for 3 epochs, then a ReLU), batch 1024, Nesterov SGD (momentum 0.85) at a peak learning rate
of 1.3 on a triangular schedule, weight decay 0.0153 / 10 coupled to the learning rate as torch's
SGD, BatchNorm shifts at 64x the learning rate with their scales frozen, label smoothing 0.2, random
2-pixel translation and mirroring (random; or airbench's alternating flip), test-time augmentation
at the last epoch (mirror and 1-pixel shifts). benchmarks/train.md has the accuracy and time this
reaches on a 2-core CPU.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.recipe = "train"
    c.shared_dir = ""  # "" = $JFV_SHARED, else ../shared beside the repository
    c.cifar10_path = ""  # CIFAR-10 .tar.gz or folder, in any form ("" = $JFV_CIFAR10, else <shared>/data/cifar10/)
    c.arch = "convnet"  # convnet | cifar_resnet20 | cifar_resnet32 | cifar_resnet44 | cifar_resnet56
    # convnet switches (jfv.models.convnet): channels per block, BN, zero padding, fixed whitening layer
    c.widths = "32,128,128"
    c.batch_norm = True
    c.padding = True
    c.whiten = True
    c.whiten_split = True  # whitening outputs of both signs, a trained bias and a ReLU (airbench); False: linear
    c.whiten_bias_epochs = 3  # with whiten_split: the epochs its bias trains before it holds (airbench: 3)
    c.train_per_class = 5000  # training images per class (<= 5000: the whole train split)
    c.test_per_class = 1000  # test images per class (<= 1000: the whole test split)
    # training images per class held out for validation (choose settings on it: the test split is
    # then read once, at the last epoch); 0: train on all train_per_class, evaluate on test each epoch
    c.val_per_class = 0
    c.epochs = 16  # 25-28 minutes on a 2-core CPU, 88.97 ± 0.30% over 3 seeds (benchmarks/train.md)
    c.batch_size = 1024
    c.learning_rate = 1.3  # peak, for the batch-mean loss
    c.schedule = "triangular"  # triangular | cosine | constant
    c.warmup = 0.2  # fraction of the run spent rising to the peak
    c.momentum = 0.85
    c.nesterov = True
    c.weight_decay = 0.00153  # coupled: added to the gradient as wd * param, as torch's SGD
    c.bias_lr_scale = 64.0  # biases and BN shifts step this much faster (with wd / this)
    c.freeze_bn_scale = True  # BN scales stay 1
    c.label_smoothing = 0.2
    c.small_epochs = 0  # progressive resizing: the first small_epochs epochs train on small_size crops (cheaper steps)
    c.small_size = 24
    c.translate = 2  # random shift of up to this many pixels (reflect padding)
    c.flip = "random"  # horizontal mirror: none | random (each image, p=1/2) | alternate (airbench: every other epoch)
    c.lookahead = True  # airbench's lookahead: every 5 steps the weights move to an EMA of themselves
    c.tta = 2  # test-time augmentation: 0 none, 1 mirror, 2 mirror and 1-pixel shifts (airbench); at the last epoch, the others none
    c.seed = 0  # init, data order and augmentation
    c.track_channel = 0  # the filter of every conv layer whose AM image is kept each epoch
    c.am_steps = 64  # AM steps for those images (0: first-layer filters only)
    c.keep_checkpoints = 2  # end-of-epoch checkpoints kept in <workdir>/checkpoints
    c.eval_batch_size = 500
    c.devices = 0  # data parallel over local devices: 0 the default device, n the first n, -1 all (batch_size a multiple)
    # Several processes (hosts): the batch sharded over every device of every process; DIR shared by all.
    c.distributed = False  # True: jax.distributed (auto-detected on TPU pods, SLURM, Open MPI; else the keys below)
    c.coordinator_address = ""  # HOST:PORT of process 0
    c.num_processes = 0
    c.process_id = -1
    c.resume = True  # False: move the workdir's earlier outputs aside and start over
    c.progress = True
    return c
