"""Class visualisations of all ten CIFAR-10 classes through ResNet-20's logits, at 32 px.

    python -m jfv.convert --model=cifar_resnet20 --checkpoint=../shared/weights/cifar10-resnet/resnet20-12fca82f.th
    python -m jfv --config=configs/cifar_resnet20_class.py --workdir=/tmp/jfv_cifar20_classes

Channels are class indices 0:10 (airplane ... truck); set --config.class_name=cat for one class.
Transforms are off: Lucid's jitter and rotation are sized for 224 px ImageNet inputs and would
dominate a 32 px image. Expected: ten 32x32 PNGs in under a minute on a 2-core CPU.
"""

from configs import vgg16_channels


def get_config():
    c = vgg16_channels.get_config()  # every key declared there; these override it
    c.model = "cifar_resnet20"
    c.layer = "logits"
    c.channels = "0:10"
    c.objective = "class"
    c.steps = 256
    c.image_size = 32
    c.transforms = "none"
    c.batch_size = 10
    return c
