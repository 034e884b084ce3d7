"""Class visualisation of ImageNet's goldfish (class 1) through ResNet-50's logits.

    python -m jfv.convert --model=resnet50 --checkpoint=PATH/TO/resnet50-0676ba61.pth
    python -m jfv --config=configs/resnet50_class.py --workdir=/tmp/jfv_resnet50_goldfish

The class is looked up by name in the ImageNet labels (``jfv.models.labels``); try
--config.class_name=flamingo. Unknown names fail with the closest matches. Expected: one PNG with
orange, fish-scale textures after 512 steps.
"""

from configs import vgg16_channels


def get_config():
    c = vgg16_channels.get_config()  # every key declared there; these override it
    c.model = "resnet50"
    c.layer = "logits"
    c.channels = ""
    c.objective = "class"
    c.class_name = "goldfish"
    c.steps = 512
    c.image_size = 224
    c.batch_size = 1
    return c
