"""A small VGG-style CIFAR-10 convnet to train in jfv, with batch norm and padding as switches.

The layout follows Jordan's fast CIFAR-10 networks (airbench, 2024): an optional fixed 2x2
whitening convolution, then blocks of ``conv -> 2x2 max-pool -> BN -> ReLU -> conv -> BN -> ReLU``
at ``widths`` channels, a global max-pool and a bias-free linear layer whose logits are scaled by
``logit_scale``. The activations are ReLUs, not airbench's GELUs, so jfv's tools read the network
plainly (a module field: guided backprop and the deconvnet swap them). The whitening layer is
airbench's with ``whiten_split`` (each output with both signs, a bias and a ReLU: the training
recipe's default) or linear without it; linear, it composes with the first trained convolution into
one 4x4 RGB filter (``rgb_filters``; split, that filter is the composition's linear part).

Switches (module fields, as in Berthier & Mantoux's study): ``batch_norm`` (False: no BN layers),
``padding`` (False: every 3x3 convolution is "valid", so each loses a 2-pixel border; at 32 px
that leaves room for two blocks, see ``check_geometry``).

Named activations: ``whiten`` (when present), ``conv{l}`` (the l-th 3x3 conv's output, before BN),
``relu{l}`` (after its BN and ReLU), ``pool{b}`` (block b's pool output, before BN), ``features``
(the global max, (N, C)) and ``logits`` (N, 10).

Jordan 2024, "94% on CIFAR-10 in 3.29 seconds on a single GPU" (arXiv:2404.00498).
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jfv.models.base import Model
from jfv.models.registry import Entry, TrainedWeights, cifar10_labels, layer_table
from jfv.models.resnet import BatchNorm
from jfv.models.weights import MANIFEST, WeightsError, restore, weights_dir as default_weights_dir
from jfv.models.vgg import tiled_max_pool

Array = jax.Array

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)  # CIFAR-10 training set per-channel mean
CIFAR10_STD = (0.2470, 0.2435, 0.2616)  # CIFAR-10 training set per-channel std
WHITEN_PATCH = 2  # airbench: 2x2 patches
WHITEN_CHANNELS = 3 * WHITEN_PATCH**2  # one output per eigenvector of the 12-dim patch covariance
WHITEN_EPS = 5e-4  # airbench's eigenvalue floor
DEFAULT_WIDTHS = (32, 128, 128)  # half of airbench94's (64, 256, 256): fits a 2-core CPU budget
BN_MOMENTUM = 0.4  # torch convention (weight of the new batch), airbench94's (its 0.6 is the old batch's weight)
KERNEL_INIT = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")  # torch Conv2d / Linear default


class GeometryError(ValueError):
    """A layout that leaves no pixels at the input size (too many blocks without padding)."""


class ConvNet(nn.Module):
    """See the module docstring.

    Attributes:
        widths: channels of each block (two 3x3 convs a block).
        batch_norm: BN after each pool / conv (False: none).
        padding: zero padding 1 on every 3x3 conv (False: valid convolutions).
        whiten: a fixed 2x2 whitening conv first (its kernel set from data by
            ``whitening_kernel``; the training recipe freezes it).
        whiten_split: the whitening conv gives each output with both signs (24 channels), a
            trained bias and a ReLU, as airbench (a GELU there); False: 12 linear outputs.
        num_classes, logit_scale: the linear head and the factor on its output.
        relu: the activation (a field so attribution can swap it).
        train: BN uses batch statistics and keeps running ones in ``batch_stats``.
    """

    widths: Sequence[int] = DEFAULT_WIDTHS
    batch_norm: bool = True
    padding: bool = True
    whiten: bool = True
    whiten_split: bool = False
    num_classes: int = 10
    logit_scale: float = 1 / 9
    relu: Callable[[Array], Array] = nn.relu
    train: bool = False

    def _norm(self, name: str) -> Callable[[Array], Array]:
        if not self.batch_norm:
            return lambda x: x
        return BatchNorm(train=self.train, momentum=BN_MOMENTUM, name=name)

    @nn.compact
    def __call__(self, images: Array) -> dict[str, Array]:
        out: dict[str, Array] = {}
        x = (images - jnp.asarray(CIFAR10_MEAN, images.dtype)) / jnp.asarray(CIFAR10_STD, images.dtype)
        if self.whiten and self.whiten_split:
            x = out["whiten"] = self.relu(nn.Conv(2 * WHITEN_CHANNELS, (WHITEN_PATCH, WHITEN_PATCH), padding="VALID",
                                                  use_bias=True, name="whiten")(x))
        elif self.whiten:
            x = out["whiten"] = nn.Conv(WHITEN_CHANNELS, (WHITEN_PATCH, WHITEN_PATCH), padding="VALID",
                                        use_bias=False, name="whiten")(x)
        pad = ((1, 1), (1, 1)) if self.padding else "VALID"
        layer = 0
        for b, width in enumerate(self.widths, start=1):
            for i in (1, 2):
                layer += 1
                x = out[f"conv{layer}"] = nn.Conv(width, (3, 3), padding=pad, use_bias=not self.batch_norm,
                                                  kernel_init=KERNEL_INIT, name=f"conv{layer}")(x)
                if i == 1 and x.shape[1] >= 2:
                    x = out[f"pool{b}"] = tiled_max_pool(x, 2)
                x = out[f"relu{layer}"] = self.relu(self._norm(f"bn{layer}")(x))
        x = out["features"] = jnp.max(x, axis=(1, 2))
        out["logits"] = nn.Dense(self.num_classes, use_bias=False, kernel_init=KERNEL_INIT, name="linear")(x) * self.logit_scale
        return out


def spatial_sizes(module: ConvNet, image_size: int = 32) -> list[int]:
    """The map's side after each 3x3 conv (and its pool), in order; no FLOPs spent."""
    s = image_size - (WHITEN_PATCH - 1 if module.whiten else 0)
    sizes = []
    for b in range(1, len(module.widths) + 1):
        for i in (1, 2):
            s = s if module.padding else s - 2
            if i == 1 and s >= 2:
                s //= 2
            sizes.append(s)
    return sizes


def check_geometry(module: ConvNet, image_size: int = 32) -> None:
    """Raises GeometryError naming the fix when some conv would have no output pixel."""
    sizes = spatial_sizes(module, image_size)
    if min(sizes) < 1:
        fits = 0
        while fits < len(module.widths) and min(spatial_sizes(module.clone(widths=module.widths[: fits + 1]),
                                                             image_size)) >= 1:
            fits += 1
        raise GeometryError(
            f"widths {tuple(module.widths)} with padding=False leaves no pixels at {image_size} px "
            f"(sizes {sizes}): use at most {fits} block(s) (a widths list of length {fits}) or padding=True")


def whitening_kernel(images: np.ndarray, eps: float = WHITEN_EPS) -> np.ndarray:
    """The 2x2 whitening conv's kernel (HWIO, 2x2x3x12) from uint8 or [0, 1] RGB images (N, H, W, 3).

    Every 2x2 patch of the normalised images is a 12-vector; with the patch covariance's
    eigendecomposition ``C = V diag(l) V^T``, output channel k is ``v_k / sqrt(l_k + eps)``, so the
    layer's outputs on these images are uncorrelated with unit variance (up to ``eps``).
    """
    x = np.asarray(images, np.float32)
    if x.max() > 1.0:
        x = x / 255.0
    x = (x - np.asarray(CIFAR10_MEAN, np.float32)) / np.asarray(CIFAR10_STD, np.float32)
    p = WHITEN_PATCH
    n, h, w, c = x.shape
    patches = np.stack([x[:, i : h - p + 1 + i, j : w - p + 1 + j] for i in range(p) for j in range(p)], axis=3)
    patches = patches.reshape(-1, p * p * c).astype(np.float64)  # (i, j, c) order = HWI
    patches -= patches.mean(axis=0)
    cov = patches.T @ patches / len(patches)
    values, vectors = np.linalg.eigh(cov)
    kernel = vectors / np.sqrt(values + eps)  # columns: outputs
    return kernel.reshape(p, p, c, p * p * c).astype(np.float32)


def initialise(module: ConvNet, key: jax.Array, images: np.ndarray | None = None) -> dict:
    """Training's starting params: torch's default uniform init, then every 3x3 kernel's first
    ``C_in`` filters set to the identity (an implicit residual: airbench's dirac init), and the
    whitening kernel from ``images`` (the training images, or a sample of them)."""
    params = jax.tree.map(np.asarray, module.init(key, jnp.zeros((1, 32, 32, 3), jnp.float32))["params"])
    params = {k: dict(v) for k, v in params.items()}
    for name, p in params.items():
        k = p.get("kernel")
        if name.startswith("conv") and k is not None and k.shape[:2] == (3, 3):
            cin, cout = k.shape[2:]
            k = np.array(k)
            n = min(cin, cout)
            k[:, :, :, :n] = 0.0
            k[1, 1, np.arange(n), np.arange(n)] = 1.0
            p["kernel"] = k
    if module.whiten:
        if images is None:
            raise ValueError("a ConvNet with whiten=True needs training images to set its whitening layer")
        kernel = whitening_kernel(images)
        params["whiten"]["kernel"] = np.concatenate([kernel, -kernel], axis=-1) if module.whiten_split else kernel
    return jax.tree.map(jnp.asarray, params)


def rgb_filters(params) -> np.ndarray:
    """The first trained layer as RGB filters (kh, kw, 3, C): ``conv1`` composed with ``whiten``
    (a 4x4 filter when whitening is on, since nothing nonlinear lies between), else ``conv1``.
    With split whitening (``whiten_split``), the linear part of that composition."""
    k1 = np.asarray(params["conv1"]["kernel"], np.float64)
    if "whiten" not in params:
        return k1.astype(np.float32)
    kw = np.asarray(params["whiten"]["kernel"], np.float64)  # (2, 2, 3, 12), or (2, 2, 3, 24) split
    if kw.shape[-1] == 2 * WHITEN_CHANNELS:
        # split whitening: conv1 reads relu(z + b) and relu(-z + b'); its linear part in z is half
        # the difference of its weights on the two halves (exact where both biases are 0)
        half = WHITEN_CHANNELS
        kw = kw[..., :half]
        k1 = (k1[:, :, :half] - k1[:, :, half:]) / 2
    ph, pw = kw.shape[:2]
    qh, qw, _, cout = k1.shape
    out = np.zeros((ph + qh - 1, pw + qw - 1, 3, cout))
    for a in range(qh):
        for b in range(qw):
            # output y at p reads whiten at p + (a, b), which reads pixels p + (a, b) + (i, j)
            out[a : a + ph, b : b + pw] += np.einsum("ijcm,mo->ijco", kw, k1[a, b])
    return out.astype(np.float32)


__all__ = ["ConvNet", "GeometryError", "check_geometry", "initialise", "rgb_filters", "spatial_sizes", "whitening_kernel"]


TRAIN_COMMAND = "python -m jfv --config=configs/cifar10_train.py --workdir=DIR"


def load(pretrained=True, weights_dir=None, seed=0, checkpoint=None) -> Model:
    """The CIFAR-10 convnet jfv trains: weights only from a training run, whose ``model/`` folder
    records the module's fields (widths, batch norm, padding, whitening)."""
    name = CIFAR_CONVNET.name
    if checkpoint is None and pretrained:
        checkpoint = default_weights_dir(weights_dir) / name
        if not (checkpoint / MANIFEST).exists():
            raise WeightsError(
                f"no trained {name} at {checkpoint} (it has no published weights): train one with\n  "
                f"{TRAIN_COMMAND}\nand load it with weights_dir=DIR, which holds DIR/{name}")
    if checkpoint is not None:
        params, manifest = restore(checkpoint, f"train it again: {TRAIN_COMMAND}", model=name)
        fields = dict(manifest.get("module", {}))
        if "widths" in fields:
            fields["widths"] = tuple(fields["widths"])
        module = ConvNet(**fields)
        source = str(checkpoint)
    else:
        module = ConvNet()
        params = module.init(jax.random.key(seed), jnp.zeros((1, 32, 32, 3)))["params"]
        source = f"random init (seed {seed})"
    params = jax.tree.map(jnp.asarray, params)
    return Model(name=name, module=module, params=params, layers=layer_table(module, params, 32),
                 image_size=32, labels=cifar10_labels(), source=source)


# The registry entry (``jfv.models.registry``): weights from a jfv training run only.
CIFAR_CONVNET = Entry(
    name="cifar_convnet", module=ConvNet, image_size=32, labels=cifar10_labels,
    normalisation="CIFAR-10 mean and std, then an optional patch-whitening layer, inside the module",
    weights=TrainedWeights(command=TRAIN_COMMAND), load=load,
)
ENTRIES = (CIFAR_CONVNET,)
