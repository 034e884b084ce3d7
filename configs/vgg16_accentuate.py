"""Feature accentuation of two photos towards four VGG16 conv4_3 channels (Hamblin et al. 2024;
docs/inversion.md):

    python -m jfv --config=configs/vgg16_accentuate.py --workdir=runs/accentuate

The owl and the parrot from ``../shared/data/images/openimages`` (or --config.shared_dir=PATH, or
$JFV_SHARED) at 128 px; other photos: --config.images=PATH[,PATH...]. Each rendering starts from the
photo (``ImageParam.init_from_image``) and maximises the channel's mean activation (over the seed's
RMS activation of the layer) minus ``penalty`` x the relative squared distance of its conv4_3
activations from the photo's, inside an L-inf ball of radius ``eps`` around the photo. Expected:
images/*.png, grid.png (rows owl, parrot; columns seed, channels), index.html and manifest.json in
about 5 minutes on a 2-core CPU; each channel's mean activation rises from about -10 on the photo to
34-47 while every pixel stays within eps of the photo (docs/inversion.md). penalty=0 and norm=none give ordinary
activation maximisation started from the photo.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.recipe = "accentuate"
    c.model = "vgg16"  # jfv.models.names()
    c.weights_dir = ""  # "" = $JFV_WEIGHTS_DIR or the repo's weights/
    # comma-separated files or folders; "shared:REL" is REL inside the shared folder
    c.images = "shared:data/images/openimages/owl.jpg,shared:data/images/openimages/parrot.jpg"
    c.max_images = 0  # at most this many photos (0 = all)
    c.shared_dir = ""  # "" = $JFV_SHARED, else ../shared beside the repository
    c.image_size = 128  # shorter side resized, then centre-cropped; also the rendering's size
    c.layer = "conv4_3"  # the channels' layer
    c.channels = "0:4"  # half-open range a:b, or a list "48,62,73,91"
    c.reg_layer = ""  # the penalty's layer; "" = layer (Hamblin et al.: the target's layer or an earlier one)
    c.penalty = 1.0  # weight of the relative squared feature distance from the seed (0 = plain AM)
    c.norm = "linf"  # none | linf | l2: a pixel-space ball around the seed
    c.eps = 0.1  # its radius in [0, 1] pixel units (L2: over the whole image)
    c.transforms = "none"  # none | standard (Lucid's, applied to the rendering and its photo together)
    c.steps = 128
    c.learning_rate = 0.05  # Adam
    c.fft = True  # Fourier parameterisation, 1/f scaled
    c.decorrelate = True  # decorrelated colour
    c.seed = 0
    c.batch_size = 0  # (photo, channel) cells per compiled call (memory); 0 = all at once
    c.progress = True
    return c
