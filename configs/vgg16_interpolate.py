"""Channel interpolation strips on VGG16 conv4_3: 6 frames from channel 48 to 62 and from 73 to 91.

    python -m jfv --config=configs/vgg16_interpolate.py --workdir=/tmp/jfv_interpolate

Olah et al. 2017's interpolation figure with Lucid's aligned-interpolation recipe: frame i maximises
(1 - t_i) channel a + t_i channel b (t_i = i / 5), minus 0.1 x the alignment penalty (decay ratio 5)
at conv3_3 and conv4_3, the frames sharing low-resolution components (jfv.optvis.interpolation.param);
Fourier + decorrelated colour, Lucid's standard transforms, Adam 0.05, 64 px, 96 steps.
Expected: strips/conv4_3_0048_0062.png and strips/conv4_3_0073_0091.png (frame 0 looks like
channel a's visualisation, the last like channel b's, the frames between morph with a common
layout), sprite.png, index.html and manifest.json, whose per-frame activation_a falls and
activation_b rises along each strip (measured: 46.6 -> 0.7 and -13.3 -> 49.3 for 48 -> 62; objectives
215.2 and 278.5; docs/interpolation.md). 247 s measured on a 2-core CPU shared with other jobs (12
images per step); --config.image_size=128 --config.steps=256 (Lucid's size) is about 4 x 2.7 times that.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.recipe = "interpolate"
    c.model = "vgg16"  # jfv.models.names() (an RGB model)
    c.weights_dir = ""  # "" = $JFV_WEIGHTS_DIR or the repo's weights/
    c.layer = "conv4_3"
    c.pairs = "48-62,73-91"  # comma-separated a-b channel pairs: frame 0 shows a, the last frame b
    c.frames = 6  # images per strip, >= 2
    c.shared = True  # low-resolution components shared across the strip (Lucid's); False: independent frames
    c.alignment = 0.1  # weight of the alignment penalty (0: none)
    c.alignment_layers = "conv3_3,conv4_3"  # where neighbouring frames' activations are pulled together
    c.decay_ratio = 5.0  # frames d apart weigh decay_ratio**-d (Lucid's notebook: 5)
    c.steps = 96
    c.preset = "lucid"  # lucid: Adam at learning_rate for steps | draft: sets both (docs/presets.md)
    c.image_size = 64
    c.learning_rate = 0.05  # Adam
    c.transforms = "standard"  # standard (Lucid's) | none; one draw per step for the whole strip
    c.seed = 0
    c.precision = "float32"  # the network's compute: float32 | bfloat16
    c.batch_size = 0  # pairs per compiled call (0 = all at once)
    c.progress = True
    return c
