"""A seconds-long attribution run for tests: all VGG16 methods at 32 px, 2 faithfulness steps.

    python -m jfv --config=configs/attribute_tiny.py --workdir=/tmp/jfv_attr_tiny
"""

from configs import attribute_vgg16_channel


def get_config():
    c = attribute_vgg16_channel.get_config()
    c.image_size = 32
    c.layer = "conv4_3"
    c.grad_cam_layer = "conv3_3"
    c.smoothgrad_samples = 2
    c.occlusion_window = 12
    c.occlusion_stride = 10
    c.faithfulness_steps = 2
    return c
