"""Class visualisations of all ten CIFAR-10 classes through ResNet-20's logits, at 32 px.

    python -m jfv.convert --model=cifar_resnet20 --checkpoint=../shared/weights/cifar10-resnet/resnet20-12fca82f.th
    python -m jfv --config=configs/cifar_resnet20_class.py --workdir=/tmp/jfv_cifar20_classes

Channels are class indices 0:10 (airplane ... truck); set --config.class_name=cat for one class.
Transforms are off: Lucid's jitter and rotation are sized for 224 px ImageNet inputs and would
dominate a 32 px image. Expected: ten 32x32 PNGs in under a minute on a 2-core CPU.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.recipe = "channels"
    c.model = "cifar_resnet20"  # jfv.models.names()
    c.weights_dir = ""  # "" = $JFV_WEIGHTS_DIR or the repo's weights/
    c.layer = "logits"  # any name in the model's layer table; "logits" for objective=class
    c.channels = "0:10"  # half-open range a:b, or a list "48,62,73,91"
    c.objective = "class"  # channel | neuron | class
    c.class_name = ""  # with objective=class: a label name instead of channel indices
    c.diversity = 0.0  # weight of the diversity objective (needs images_per_channel >= 2)
    c.images_per_channel = 1
    c.steps = 256
    c.image_size = 32
    c.learning_rate = 0.05  # Adam
    c.fft = True  # Fourier parameterisation, 1/f scaled
    c.decorrelate = True  # decorrelated colour
    c.transforms = "none"  # standard (Lucid's) | none
    c.seed = 0
    c.batch_size = 10  # channels per compiled call (memory); 0 = all at once
    c.devices = 0  # shard channels over devices: 0 none, n the first n, -1 all
    c.progress = True
    return c
