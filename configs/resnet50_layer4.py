"""Feature visualisations of 8 ResNet-50 ``layer4`` channels (the map before the global pool).

    python -m jfv.convert --model=resnet50 --checkpoint=PATH/TO/resnet50-0676ba61.pth
    python -m jfv --config=configs/resnet50_layer4.py --workdir=/tmp/jfv_resnet50_layer4

Needs torchvision's ImageNet ResNet-50 state dict converted once (first command; torch installed).
Lucid's recipe at 128 px: Fourier + decorrelated colour, standard transforms, Adam 0.05. Expected:
8 PNGs of object-part textures; ``layer4.0`` ... ``layer4.2`` or ``layer3.5`` work as layers too.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.recipe = "channels"
    c.model = "resnet50"  # jfv.models.names()
    c.weights_dir = ""  # "" = $JFV_WEIGHTS_DIR or the repo's weights/
    c.layer = "layer4"  # any name in the model's layer table; "logits" for objective=class
    c.channels = "0:8"  # half-open range a:b, or a list "48,62,73,91"
    c.objective = "channel"  # channel | neuron | class
    c.class_name = ""  # with objective=class: a label name instead of channel indices
    c.diversity = 0.0  # weight of the diversity objective (needs images_per_channel >= 2)
    c.images_per_channel = 1
    c.steps = 256
    c.image_size = 128
    c.learning_rate = 0.05  # Adam
    c.fft = True  # Fourier parameterisation, 1/f scaled
    c.decorrelate = True  # decorrelated colour
    c.transforms = "standard"  # standard (Lucid's) | none
    c.seed = 0
    c.batch_size = 4  # channels per compiled call (memory); 0 = all at once
    c.devices = 0  # shard channels over devices: 0 none, n the first n, -1 all
    c.progress = True
    return c
