"""Feature visualisations of 8 ResNet-50 ``layer4`` channels (the map before the global pool).

    python -m jfv.convert --model=resnet50 --checkpoint=PATH/TO/resnet50-0676ba61.pth
    python -m jfv --config=configs/resnet50_layer4.py --workdir=/tmp/jfv_resnet50_layer4

Needs torchvision's ImageNet ResNet-50 state dict converted once (first command; torch installed).
Lucid's recipe at 128 px: Fourier + decorrelated colour, standard transforms, Adam 0.05. Expected:
8 PNGs of object-part textures; ``layer4.0`` ... ``layer4.2`` or ``layer3.5`` work as layers too.
"""

from configs import vgg16_channels


def get_config():
    c = vgg16_channels.get_config()  # every key declared there; these override it
    c.model = "resnet50"
    c.layer = "layer4"
    c.steps = 256
    c.batch_size = 4
    return c
