"""Two networks jfv does not special-case, brought in with ``wrap``: a small Vision Transformer and
a grayscale CNN. Both have random weights (no training run ships with them): they show that any
Flax module runs through every recipe, not what a trained network has learnt.

- ``vit_tiny``: 4x4 patch embedding (a strided conv), fixed 2-D sine-cosine position embeddings
  (so any image size divisible by 4 works, as AM's transforms change the size), ``depth``
  pre-norm attention blocks, mean-pooled tokens, a linear head; its geometry makes ``patch_embed``
  a spatial map with patches (top_patches), the token layers not. Layers: ``patch_embed``
  ((N, H/4, W/4, D), before flattening), the token layers (N, T, D) ``tokens``, ``block1`` ...,
  their ``attn``, ``mlp/fc1`` and ``mlp`` parts and the final ``norm``, and ``logits`` (N, 10). Its "channels" are the D embedding dims: a channel objective
  averages a dim over tokens, ``objectives.token`` picks one token. It has no ReLU (GELU MLPs), so
  deconvnet and guided backprop refuse it with the fix; saliency, Grad-CAM on ``patch_embed``
  and occlusion work.
- ``gray_cnn``: 1-channel input, ``conv1 -> relu -> pool -> conv2 -> relu -> pool -> conv3 -> relu
  -> global mean -> logits``, the ReLU a module field (so deconvnet and guided backprop work) and
  the post-ReLU maps stored with ``self.sow`` (``relu1`` ...); it declares its geometry
  (receptive fields, top_patches) and its plain stack (deconvnet with explicit switches).

Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words" (ViT); the sine-cosine position
embedding of Vaswani et al. 2017 in 2-D (MAE, He et al. 2022).
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jfv.models.base import Model
from jfv.models.registry import Entry, RandomWeights
from jfv.models.wrap import wrap
from jfv.models.receptive import GLOBAL, Layer, Window
from jfv.models.weights import WeightsError

Array = jax.Array

VIT_IMAGE_SIZE = 32
VIT_MEAN = (0.5, 0.5, 0.5)  # ViT's usual [-1, 1] input scaling
VIT_STD = (0.5, 0.5, 0.5)
GRAY_IMAGE_SIZE = 32
GRAY_MEAN = 0.5  # maps [0, 1] to [-2, 2]; arbitrary for random weights, stated
GRAY_STD = 0.25
POSITION_BASE = 10000.0  # Vaswani et al. 2017's sine-cosine wavelength base


def sincos_2d(h: int, w: int, dim: int) -> np.ndarray:
    """Fixed 2-D sine-cosine position embeddings (h * w, dim): a quarter of the dims each for
    sin(y), cos(y), sin(x), cos(x) at geometric frequencies; ``dim`` a multiple of 4."""
    q = dim // 4
    omega = 1.0 / POSITION_BASE ** (np.arange(q) / max(q, 1))
    y, x = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    ay, ax = y.reshape(-1, 1) * omega, x.reshape(-1, 1) * omega
    return np.concatenate([np.sin(ay), np.cos(ay), np.sin(ax), np.cos(ax)], axis=1).astype(np.float32)


class Mlp(nn.Module):
    """Dense -> GELU -> Dense."""

    hidden: int

    @nn.compact
    def __call__(self, x: Array) -> Array:
        return nn.Dense(x.shape[-1], name="fc2")(nn.gelu(nn.Dense(self.hidden, name="fc1")(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + mlp(LN(x))."""

    heads: int
    hidden: int

    @nn.compact
    def __call__(self, x: Array) -> Array:
        x = x + nn.MultiHeadDotProductAttention(self.heads, name="attn")(nn.LayerNorm(name="ln1")(x))
        return x + Mlp(self.hidden, name="mlp")(nn.LayerNorm(name="ln2")(x))


class ViT(nn.Module):
    """A small Vision Transformer on (N, H, W, 3) normalised images; see the module docstring."""

    patch: int = 4
    dim: int = 32
    depth: int = 2
    heads: int = 4
    hidden: int = 64
    num_classes: int = 10

    @nn.compact
    def __call__(self, x: Array) -> Array:
        x = nn.Conv(self.dim, (self.patch, self.patch), strides=(self.patch, self.patch), padding="VALID",
                    name="patch_embed")(x)
        n, h, w, d = x.shape
        x = x.reshape(n, h * w, d) + jnp.asarray(sincos_2d(h, w, d), x.dtype)
        self.sow("intermediates", "tokens", x)
        for i in range(1, self.depth + 1):
            x = Block(self.heads, self.hidden, name=f"block{i}")(x)
        x = nn.LayerNorm(name="norm")(x)
        return nn.Dense(self.num_classes, name="head")(x.mean(axis=1))

    def geometry(self) -> dict[str, Layer]:
        """``jfv.models.receptive``'s view: ``patch_embed`` is a spatial map (a ``patch`` x ``patch`` conv of
        stride ``patch``), so its units have image patches (top_patches, receptive fields); the token
        layers after it are not spatial maps (attention mixes every token), so they have none."""
        geo = {"patch_embed": Layer(None, (Window(self.patch, self.patch),)), "tokens": Layer("patch_embed", (GLOBAL,))}
        for i in range(1, self.depth + 1):
            for part in ("ln1", "attn", "ln2", "mlp/fc1", "mlp/fc2", "mlp", ""):
                geo[f"block{i}/{part}" if part else f"block{i}"] = Layer("tokens")
        geo.update(norm=Layer("tokens"), head=Layer("tokens"), logits=Layer("tokens"))
        return geo


class GrayCNN(nn.Module):
    """A 1-channel CNN with a swappable ReLU; see the module docstring."""

    widths: tuple[int, ...] = (16, 32, 32)
    num_classes: int = 10
    relu: Callable[[Array], Array] = nn.relu

    @nn.compact
    def __call__(self, x: Array) -> Array:
        for i, width in enumerate(self.widths, start=1):
            x = self.relu(nn.Conv(width, (3, 3), padding=((1, 1), (1, 1)), name=f"conv{i}")(x))
            self.sow("intermediates", f"relu{i}", x)
            if i < len(self.widths):
                x = nn.max_pool(x, (2, 2), (2, 2))
        return nn.Dense(self.num_classes, name="head")(x.mean(axis=(1, 2)))

    def geometry(self) -> dict[str, Layer]:
        """Each named layer's parent and the windows between them (``jfv.models.receptive``): 3x3 convs with
        padding 1, a 2x2 max-pool before every conv but the first, a global mean before ``logits``."""
        geo: dict[str, Layer] = {}
        last = None
        for i in range(1, len(self.widths) + 1):
            steps = (Window(3, 1, 1),) if i == 1 else (Window(2, 2), Window(3, 1, 1))
            geo[f"conv{i}"] = Layer(last, steps)
            geo[f"relu{i}"] = Layer(f"conv{i}")
            last = f"relu{i}"
        geo["logits"] = Layer(last, (GLOBAL,))
        return geo


def gray_plain_stack(module: GrayCNN) -> tuple[tuple, ...]:
    """``GrayCNN``'s convolutions as the plain stack deconvnet's switches walk (``wrap(plain_stack=)``):
    conv (3x3, padding 1) -> relu, a 2x2 max-pool between blocks; the pools are not layers of the
    model, so they get names of their own (``pool1``, ``pool2``)."""
    steps: list[tuple] = []
    for i in range(1, len(module.widths) + 1):
        steps += [("conv", f"conv{i}", 3, 1, 1, f"conv{i}"), ("relu", f"relu{i}")]
        if i < len(module.widths):
            steps.append(("pool", f"pool{i}", 2, 2))
    return tuple(steps)


def _random(name: str, module: nn.Module, size: int, channels: int, seed: int, checkpoint, pretrained: bool):
    if checkpoint is not None:
        raise WeightsError(f"{name} has no trained weights to load (it is a random-weight example of "
                           f"jfv.models.wrap): drop checkpoint, or wrap your own trained module and params")
    params = module.init(jax.random.key(seed), jnp.zeros((1, size, size, channels), jnp.float32))["params"]
    return params, f"random init (seed {seed}; no trained weights)"


def vit_tiny(pretrained: bool = True, weights_dir=None, seed: int = 0, checkpoint=None) -> Model:
    """The example ViT, wrapped: random weights (``pretrained`` is ignored: there are none)."""
    module = ViT()
    params, source = _random(VIT_TINY.name, module, VIT_IMAGE_SIZE, 3, seed, checkpoint, pretrained)
    layers = ["patch_embed", "tokens"]
    for i in range(1, module.depth + 1):  # not the (N, T, heads, head dim) query/key/value projections
        layers += [f"block{i}/attn", f"block{i}/mlp/fc1", f"block{i}/mlp", f"block{i}"]
    return wrap(module, params, name=VIT_TINY.name, mean=VIT_MEAN, std=VIT_STD, output="logits",
                layers=layers + ["norm", "logits"], image_size=VIT_IMAGE_SIZE, source=source)


def gray_cnn(pretrained: bool = True, weights_dir=None, seed: int = 0, checkpoint=None) -> Model:
    """The example grayscale CNN, wrapped: random weights (``pretrained`` is ignored: there are none)."""
    module = GrayCNN()
    params, source = _random(GRAY_CNN.name, module, GRAY_IMAGE_SIZE, 1, seed, checkpoint, pretrained)
    layers = [f"{kind}{i}" for i in range(1, len(module.widths) + 1) for kind in ("conv", "relu")]
    return wrap(module, params, name=GRAY_CNN.name, channels=1, mean=GRAY_MEAN, std=GRAY_STD, output="logits",
                layers=layers + ["logits"], image_size=GRAY_IMAGE_SIZE, source=source,
                plain_stack=gray_plain_stack(module))



# The registry entries (``jfv.models.registry``): wrapped modules with random weights.
VIT_TINY = Entry(
    name="vit_tiny", module=ViT, image_size=VIT_IMAGE_SIZE, channels=3,
    normalisation="(x - 0.5) / 0.5 per channel, inside the wrapper", weights=RandomWeights(), load=vit_tiny,
)
GRAY_CNN = Entry(
    name="gray_cnn", module=GrayCNN, image_size=GRAY_IMAGE_SIZE, channels=1,
    normalisation="(x - 0.5) / 0.25, inside the wrapper", weights=RandomWeights(), load=gray_cnn,
)
ENTRIES = (VIT_TINY, GRAY_CNN)

__all__ = ["Block", "GrayCNN", "Mlp", "ViT", "gray_cnn", "gray_plain_stack", "sincos_2d", "vit_tiny", "ENTRIES", "GRAY_CNN", "VIT_TINY"]
