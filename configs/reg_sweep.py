"""A sweep of one regulariser's strength over 4 VGG16 conv4_3 channels (the base of configs/reg_*.py).

    python -m jfv --config=configs/reg_sweep.py --workdir=/tmp/jfv_reg_sweep

Renders channels 48, 62, 73, 91 (the seed's) x every value of ``regulariser`` as one vmapped,
once-compiled program, with pixel parameterisation, Adam 0.05, no transforms, 64 px, 64 steps. This
base config sweeps total variation at the seed's convention (objective = channel + v * TV, TV summed
over pixels as Lucid does, v = lambda_tv <= 0). Expected: 16 PNGs, contact_sheet.png (a row per channel,
a column per value: saturated strokes at 0, smoother as |v| grows), index.html and manifest.json in
~2 minutes on a 2-core CPU. See docs/regularisers.md for every family and its papers.

recipe="sweep" is the study recipe (jfv/recipes/evaluation/study.py) with experiments="sweep",
seeds=1 and reference="none" filled in: it writes images/, results.csv (objective per image),
contact_sheet.png (a row per channel, a column per value), index.html and manifest.json.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.recipe = "sweep"
    c.model = "vgg16"  # jfv.models.names()
    c.weights_dir = ""  # "" = $JFV_WEIGHTS_DIR or the repo's weights/
    c.layer = "conv4_3"
    c.channels = "48,62,73,91"  # the seed's channels; a range a:b or a list
    # none | l1 | l2 | tv | blur_penalty (penalties: channel + v * R, v <= 0 penalises)
    # decay | blur | clip_norm | clip_contribution | yosinski (image steps; param must be pixel)
    # scale | rotate (transform strength, one compile) | jitter | octaves (one compile per value)
    # maco (MACO's phase-only image and crops; no strength) -- the table is jfv.optvis.families.FAMILIES
    c.regulariser = "tv"
    c.strengths = "0,-0.0001,-0.001,-0.005"  # comma list; yosinski: preset names or "all"
    c.penalty_reduction = "sum"  # mean | sum (Lucid's scale); l2 also: norm (Lucid's sqrt of the sum)
    c.penalty_constant = 0.5  # l1 / l2 distance from this grey level
    c.tv_beta = 1.0  # Mahendran & Vedaldi's exponent (1 = isotropic TV, 2 = squared gradients)
    c.blur_sigma = 1.0  # blur_penalty's Gaussian, pixels
    c.blur_every = 4  # blur step: every k steps (values are sigmas)
    c.octaves = 3  # octaves family: number of stages (values are scale factors, steps per stage)
    c.maco_crops = 4  # maco family (MACO's param and crops instead of param/transforms): crops per step
    c.param = "pixel"  # pixel | fft (Fourier + decorrelated colour; not with image steps or octaves)
    c.optimiser = "adam"  # adam | sgd
    c.learning_rate = 0.05
    c.transforms = "none"  # base transforms for every cell: none | standard (Lucid's)
    c.steps = 64
    c.image_size = 64
    c.seed = 0
    c.batch_size = 0  # cells per compiled call (memory); 0 = all at once
    c.progress = True
    return c
