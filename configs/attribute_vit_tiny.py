"""Attribution on a wrapped Vision Transformer: class 3 of ``vit_tiny`` on Grace Hopper's photo.

    python -m jfv --config=configs/attribute_vit_tiny.py --workdir=/tmp/jfv_attr_vit

``vit_tiny`` (jfv/models/examples.py) has RANDOM weights (no training run ships with it). It has no
ReLU (GELU MLPs), so deconvnet and guided backprop do not apply (they refuse with the fix); the
gradient methods, Grad-CAM on the patch embedding (an (N, H/4, W/4, D) map) and occlusion run.
Expected: overlays/*.png, grid.png (1 row x 6 columns), index.html and manifest.json with deletion /
insertion areas, in under a minute on a 2-core CPU.
"""

from configs import attribute_vgg16_channel


def get_config():
    c = attribute_vgg16_channel.get_config()
    c.model = "vit_tiny"  # random weights: see the docstring
    c.image_size = 64
    c.target = "class"
    c.channel = 3
    c.methods = "saliency,gradient_x_input,smoothgrad,grad_cam,occlusion"
    c.grad_cam_layer = "patch_embed"
    c.occlusion_window = 16
    c.occlusion_stride = 8
    return c
