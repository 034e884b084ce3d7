"""What a network does with data: datasets streamed in padded batches (``datasets``), passes of a dataset through a model (``passes``), the running
top-k of a layer's channels (``topk``) and their patches (``patches``), embeddings with nearest
neighbours and 2-D maps (``embeddings``), a layer's activation grid (``activations``), first-layer
filters (``filters``), checkerboard analysis of projections (``checkerboard``), the browsable atlas
(``atlas``) and the figures these draw (``figures``).
"""

from jfv.runtime.lazy import submodules

MODULES = ("activations", "atlas", "checkerboard", "dataset_formats", "datasets", "embeddings", "figures", "filters", "loading", "passes", "patches",
           "top_patches", "topk")
__getattr__, __dir__ = submodules(__name__, MODULES)
