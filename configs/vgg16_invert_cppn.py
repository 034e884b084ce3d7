"""Feature inversion with a CPPN as the image (Lucid's ``param.cppn``; docs/inversion.md):

    python -m jfv --config=configs/vgg16_invert_cppn.py --workdir=runs/invert_cppn

As configs/vgg16_invert.py, but the rendering is a compositional pattern-producing network of the
pixel coordinates (8 layers of 24 composite-activation units) whose weights are optimised, with Adam
0.01 (a fifth of the Fourier image's rate), at conv3_3 and conv4_3. Expected:
images/*.png, grid.png (rows owl, parrot; columns photo, conv3_3, conv4_3), index.html and
manifest.json in about 6 minutes on a 2-core CPU; smooth, grain-free, painterly renderings whose
activations are further from the photo's than configs/vgg16_invert.py's (relative error 0.38-0.55
after 200 steps, cosines 0.84-0.93) (docs/inversion.md).
"""

from configs import vgg16_invert


def get_config():
    c = vgg16_invert.get_config()
    c.param = "cppn"
    c.layers = "conv3_3,conv4_3"
    c.learning_rate = 0.01
    return c
