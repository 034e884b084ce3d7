"""Class attribution on CIFAR ResNet-20: CAM, Grad-CAM, saliency, guided backprop, occlusion.

    python -m jfv.convert --model=cifar_resnet20 --checkpoint=../shared/weights/cifar10-resnet/resnet20-12fca82f.th --out=weights/cifar_resnet20
    python -m jfv --config=configs/attribute_cifar_class.py --workdir=/tmp/jfv_attr_cifar

Four lossless CIFAR-10 test images from ../shared/data/images/foolbox (cat, ship, ship, airplane),
each explained for its predicted class (channel=-1: the strongest logit). CAM reads ResNet-20's
global-average-pool head on `layer3` (8x8 at 32 px). Expected: overlays/*.png, grid.png (4 rows x 7
columns), index.html and manifest.json with deletion / insertion areas, in under a minute on a
2-core CPU. Run from the repository root (the image paths are relative to it).
"""

from configs import attribute_vgg16_channel


def get_config():
    c = attribute_vgg16_channel.get_config()
    c.model = "cifar_resnet20"
    c.images = ",".join(
        f"../shared/data/images/foolbox/{name}.png"
        for name in ("cifar10_00_3", "cifar10_01_8", "cifar10_02_8", "cifar10_03_0")
    )
    c.image_size = 32
    c.target = "class"
    c.layer = "logits"
    c.channel = -1  # each image's predicted class
    c.methods = "saliency,gradient_x_input,smoothgrad,guided_backprop,grad_cam,cam,occlusion"
    c.grad_cam_layer = "layer3"
    c.cam_layer = "layer3"
    c.occlusion_window = 8
    c.occlusion_stride = 4
    c.faithfulness_steps = 8
    return c
