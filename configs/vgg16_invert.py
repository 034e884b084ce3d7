"""Feature inversion of two photos at three VGG16 layers (Mahendran & Vedaldi 2015; docs/inversion.md):

    python -m jfv --config=configs/vgg16_invert.py --workdir=runs/invert

The owl and the parrot from ``../shared/data/images/openimages`` (or --config.shared_dir=PATH, or
$JFV_SHARED) at 128 px; other photos: --config.images=PATH[,PATH...] (files or folders). Each
rendering starts from Fourier noise and matches the photo's activations at one layer. Expected:
images/*.png, grid.png (rows owl, parrot; columns photo, conv2_2, conv3_3, conv4_3), index.html and
manifest.json in about 6 minutes on a 2-core CPU; the relative error of the activations ends near
0.1 at every layer (cosines > 0.99) and the renderings lose colour and gain texture noise with depth
(docs/inversion.md).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.recipe = "invert"
    c.model = "vgg16"  # jfv.models.names()
    c.weights_dir = ""  # "" = $JFV_WEIGHTS_DIR or the repo's weights/
    # comma-separated files or folders; "shared:REL" is REL inside the shared folder
    c.images = "shared:data/images/openimages/owl.jpg,shared:data/images/openimages/parrot.jpg"
    c.max_images = 0  # at most this many photos (0 = all)
    c.shared_dir = ""  # "" = $JFV_SHARED, else ../shared beside the repository
    c.image_size = 128  # shorter side resized, then centre-cropped; also the rendering's size
    c.layers = "conv2_2,conv3_3,conv4_3"  # one rendering per photo and layer
    c.mode = "inversion"  # inversion (match the activations) | caricature (amplify them, Lucid)
    c.cossim_pow = 0.0  # caricature: exponent of the cosine factor (0 = plain dot product)
    c.tv = 0.05  # weight of the total-variation penalty (mean over pixels; Mahendran & Vedaldi's prior)
    c.transforms = "none"  # none | standard (Lucid's, applied to the rendering and its photo together)
    c.steps = 200
    c.learning_rate = 0.05  # Adam
    c.param = "image"  # image (Lucid's, with fft / decorrelate below) | cppn (Lucid's param.cppn; Adam 0.01)
    c.fft = True  # Fourier parameterisation, 1/f scaled
    c.decorrelate = True  # decorrelated colour
    c.seed = 0
    c.batch_size = 0  # photos per compiled call (memory); 0 = all at once
    c.progress = True
    return c
