"""Every attribution method for the strongest channel of VGG16 relu5_3 on Grace Hopper's photo.

    python -m jfv --config=configs/attribute_vgg16_channel.py --workdir=/tmp/jfv_attr

The photo is matplotlib's sample ``grace_hopper.jpg`` (every matplotlib install has it), so this runs
on a fresh machine. Expected: overlays/*.png, grid.png (1 row x 8 columns: input, saliency,
gradient x input, SmoothGrad, guided backprop, deconvnet, Grad-CAM, occlusion), index.html and
manifest.json with deletion / insertion areas per method, in about 3 minutes on a 2-core CPU.
Other images: --config.images=../shared/data/images/openimages --config.max_images=4.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.recipe = "attribute"
    c.model = "vgg16"  # jfv.models.names()
    c.weights_dir = ""  # "" = $JFV_WEIGHTS_DIR or the repo's weights/
    c.images = ""  # "" = matplotlib's grace_hopper.jpg; else files or directories, comma-separated
    c.max_images = 8  # at most this many images (0 = all)
    c.image_size = 224  # shorter side resized, then centre-cropped
    c.target = "channel"  # channel | strongest | neuron | class (needs a model with logits)
    c.layer = "relu5_3"  # the target's layer (ignored for class)
    c.channel = -1  # channel or class index; -1 = each image's strongest channel of the layer
    c.neuron_y = 0  # target=neuron: position on the layer's map
    c.neuron_x = 0
    c.methods = "saliency,gradient_x_input,smoothgrad,guided_backprop,deconvnet,grad_cam,occlusion"  # + cam
    c.smoothgrad_samples = 8
    c.smoothgrad_noise = 0.15  # std as a fraction of the image's range (Smilkov et al.: 0.1-0.2)
    c.grad_cam_layer = "relu4_3"  # any spatial layer
    c.cam_layer = ""  # method cam: the head's input feature maps (needs a GAP/GMP + dense head)
    c.occlusion_window = 32  # px
    c.occlusion_stride = 16  # px
    c.occlusion_fill = 0.5  # grey, as Zeiler & Fergus
    c.batch_size = 16  # occluded / masked images per model call
    c.faithfulness_steps = 8  # deletion / insertion curve points - 1 (0 = skip)
    c.faithfulness_baseline = "blur"  # blur | a number in [0, 1] for removed pixels
    c.overlay_alpha = 0.5
    c.projection_gain = 2.0  # contrast of deconvnet / guided backprop pictures
    c.seed = 0
    return c
