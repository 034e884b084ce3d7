"""Every channel of VGG16 conv4_3 (512) with Lucid's recipe, resumable: the whole-layer job.

    python -m jfv --config=configs/vgg16_layer.py --workdir=/tmp/jfv_conv4_3
    python -m jfv --config=configs/vgg16_layer.py --workdir=DIR --config.layers=conv3_3,conv4_3,conv5_3

Fourier + decorrelated colour, Lucid's standard transforms, Adam 0.05, 128 px, 512 steps, in groups
of 8 channels. Expected: channels/conv4_3_0000.png ... _0511.png, sprite.png (sprite_<layer>.png each when several layers), index.html and
manifest.json. On a 2-core CPU this is a day's work (~3.6 channel-steps/s: about 20 h for 512 x 512);
on one H100/H200 about a minute (see benchmarks/). Kill it at any time (Ctrl-C, SIGTERM, kill -9)
and run the same command again: it resumes, losing at most the steps since the last checkpoint.
Open index.html mid-run to see what is finished.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.recipe = "layer"
    c.model = "vgg16"  # jfv.models.names()
    c.weights_dir = ""  # "" = $JFV_WEIGHTS_DIR or the repo's weights/
    c.layers = "conv4_3"  # one or more layer names, comma-separated
    c.channels = "all"  # all | a half-open range a:b | a list 48,62,73,91 (the same for every layer)
    c.objective = "channel"  # channel (mean over positions) | neuron (centre position)
    c.steps = 512
    c.preset = "lucid"  # lucid: Adam at learning_rate for steps | draft: sets both (docs/presets.md)
    c.image_size = 128
    c.learning_rate = 0.05  # Adam
    c.fft = True  # Fourier parameterisation, 1/f scaled
    c.decorrelate = True  # decorrelated colour
    c.transforms = "standard"  # standard (Lucid's) | none | maco (random crops + noise; docs/maco.md)
    c.param = "lucid"  # lucid (Fourier, fft/decorrelate above) | maco (phase only, natural magnitude; + _alpha.png)
    c.maco_magnitude = ""  # param=maco: .npy/.npz of a (3, S, S // 2 + 1) magnitude; "" = the shipped estimate
    c.maco_crops = 4  # transforms=maco: random crops per step (each resized to image_size)
    c.maco_box = (0.5, 0.8)  # transforms=maco: crop side, a fraction of the image, uniform in [low, high]
    c.maco_noise = 0.05  # transforms=maco: normal(sd) + uniform(+-sd/2) noise on the crops (Horama's 0.05)
    c.seed = 0
    c.precision = "float32"  # the network's compute: float32 | bfloat16 (image, FFT and Adam stay float32)
    c.batch_size = 8  # channels per compiled call: bounds memory (a group; the unit of resumption)
    c.devices = 0  # shard each group over local devices: 0 none, n the first n, -1 all
    c.checkpoint_every = 64  # steps between checkpoints of the in-flight group (0: only on SIGTERM/SIGINT)
    c.resume = True  # False: move DIR's earlier outputs to DIR.old-<time> and start over
    c.discard_state = False  # True: drop an unreadable in-flight checkpoint and redo that group
    c.distributed = False  # jax.distributed.initialize(); process p renders groups g % count == p
    c.coordinator_address = ""  # HOST:PORT; "" = detect (TPU pod slices, SLURM, Open MPI)
    c.num_processes = 0  # with coordinator_address
    c.process_id = -1  # with coordinator_address
    c.progress = True
    return c
