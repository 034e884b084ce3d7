"""Class visualisation of ImageNet's goldfish (class 1) through ResNet-50's logits.

    python -m jfv.convert --model=resnet50 --checkpoint=PATH/TO/resnet50-0676ba61.pth
    python -m jfv --config=configs/resnet50_class.py --workdir=/tmp/jfv_resnet50_goldfish

The class is looked up by name in the ImageNet labels (``jfv.labels``); try
--config.class_name=flamingo. Unknown names fail with the closest matches. Expected: one PNG with
orange, fish-scale textures after 512 steps.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.recipe = "channels"
    c.model = "resnet50"  # jfv.models.names()
    c.weights_dir = ""  # "" = $JFV_WEIGHTS_DIR or the repo's weights/
    c.layer = "logits"  # any name in the model's layer table; "logits" for objective=class
    c.channels = ""  # half-open range a:b, or a list "48,62,73,91"
    c.objective = "class"  # channel | neuron | class
    c.class_name = "goldfish"  # with objective=class: a label name instead of channel indices
    c.diversity = 0.0  # weight of the diversity objective (needs images_per_channel >= 2)
    c.images_per_channel = 1
    c.steps = 512
    c.image_size = 224
    c.learning_rate = 0.05  # Adam
    c.fft = True  # Fourier parameterisation, 1/f scaled
    c.decorrelate = True  # decorrelated colour
    c.transforms = "standard"  # standard (Lucid's) | none
    c.seed = 0
    c.batch_size = 1  # channels per compiled call (memory); 0 = all at once
    c.devices = 0  # shard channels over devices: 0 none, n the first n, -1 all
    c.progress = True
    return c
