"""Feature visualisations of a wrapped Vision Transformer's embedding dims (jfv.models.wrap example).

    python -m jfv --config=configs/vit_tiny_channels.py --workdir=/tmp/jfv_vit

``vit_tiny`` (jfv/models/examples.py) is a 2-block ViT with 4x4 patches and 32-dim tokens, brought in
through ``jfv.models.wrap`` with RANDOM weights (no training run ships with it): the images show that a
token model runs through the channels recipe, not learnt features. A "channel" of a token layer
(N, T, D) is one embedding dim, averaged over tokens; ``objective=neuron`` takes the middle token
(``objectives.token``). Expected: 8 PNGs of soft colour blotches with a faint 4-pixel patch texture,
sprite.png, index.html and manifest.json in about 25 s on a 2-core CPU; final objectives from about
-0.5 to 3.3 (measured: with random weights some dims barely rise in 64 steps).
"""

from configs import vgg16_channels


def get_config():
    c = vgg16_channels.get_config()
    c.model = "vit_tiny"  # random weights: see the docstring
    c.layer = "block2"  # tokens (N, 64, 32); also tokens, block1, block1/mlp/fc1, norm, ...
    c.channels = "0:8"
    c.image_size = 64  # the standard transforms crop and scale it; any size works (sine-cosine positions)
    c.steps = 64
    return c
