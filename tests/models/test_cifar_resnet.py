"""CIFAR-10 ResNets (option A): parity with a functional PyTorch reference, and the real checkpoints.

The reference is akamaster/pytorch_resnet_cifar10's forward pass written with ``F.conv2d`` in
float64, reading the checkpoint's keys by name; the shortcut is its LambdaLayer verbatim.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="parity tests need torch (pip install 'jfv[torch]')")
F = torch.nn.functional

from jfv.models import convert, labels
from jfv import models  # noqa: E402
from jfv.models import cifar_resnet, torch_reference  # noqa: E402

TRAINED_MEAN = (0.485, 0.456, 0.406)  # akamaster trainer.py: torchvision's ImageNet statistics
TRAINED_STD = (0.229, 0.224, 0.225)
RTOL = 2e-5  # max |jfv float32 - torch float64| / max |torch| per layer
JPEG_SUBSET = 200
# The one foolbox PNG a released checkpoint gets wrong: ResNet-32 (7.37 % reported test error) calls
# ship image 15 a frog under either normalisation, and so does PyTorch on the same weights.
KNOWN_MISSES = {20: (), 32: (15,), 44: (), 56: ()}  # test JPEGs checked here; the full 10,000 are in benchmarks/cifar_accuracy.py


def shared_dir() -> Path | None:
    """$JFV_SHARED, else <repo>/../shared, else /work/shared."""
    env = os.environ.get("JFV_SHARED")
    for path in ([Path(env)] if env else []) + [Path(__file__).resolve().parents[2].parent / "shared",
                                                Path("/work/shared")]:
        if path.is_dir():
            return path
    return None


SHARED = shared_dir()
needs_shared = pytest.mark.skipif(SHARED is None, reason="shared folder (CIFAR weights and images) not found: set JFV_SHARED")


def _bn(x, sd, p):
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"],
                        sd[f"{p}.bias"], training=False, eps=1e-5)


def ref_cifar_resnet(sd, x, blocks: int) -> dict:
    """akamaster ResNet forward on NCHW float64 input in [0, 1]; jfv's names."""
    mean = torch.tensor(TRAINED_MEAN, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(TRAINED_STD, dtype=x.dtype).view(1, 3, 1, 1)
    out = {}
    x = out["conv1"] = F.conv2d((x - mean) / std, sd["conv1.weight"], padding=1)
    x = out["bn1"] = _bn(x, sd, "bn1")
    x = out["relu"] = F.relu(x)
    for s, planes in enumerate((16, 32, 64), start=1):
        for b in range(blocks):
            p, stride = f"layer{s}.{b}", (2 if s > 1 and b == 0 else 1)
            y = F.relu(_bn(F.conv2d(x, sd[f"{p}.conv1.weight"], stride=stride, padding=1), sd, f"{p}.bn1"))
            y = _bn(F.conv2d(y, sd[f"{p}.conv2.weight"], padding=1), sd, f"{p}.bn2")
            if stride != 1 or x.shape[1] != planes:
                x = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4), "constant", 0)
            x = out[p] = F.relu(y + x)
        out[f"layer{s}"] = x
    x = out["avgpool"] = F.avg_pool2d(x, x.size()[3]).view(x.size(0), -1)
    out["logits"] = F.linear(x, sd["linear.weight"], sd["linear.bias"])
    return out


def relative_errors(name: str, sd: dict, images: np.ndarray) -> tuple[dict[str, float], dict]:
    params = convert.convert_state_dict(name, sd)
    ours = models.ARCHITECTURES[name].module().apply({"params": params}, jnp.asarray(images))
    sd64 = {k: torch.from_numpy(np.asarray(v)).double() for k, v in sd.items()}
    with torch.no_grad():
        ref = ref_cifar_resnet(sd64, torch.from_numpy(images).double().permute(0, 3, 1, 2), (int(name[12:]) - 2) // 6)
    assert list(ours) == list(ref)
    errors = {}
    for layer, value in ref.items():
        value = value.numpy()
        value = value.transpose(0, 2, 3, 1) if value.ndim == 4 else value
        errors[layer] = float(np.max(np.abs(np.asarray(ours[layer], np.float64) - value)) / np.max(np.abs(value)))
    return errors, ours


@pytest.mark.parametrize("name, batch, size", [("cifar_resnet20", 2, 33)])
def test_random_weights_parity_every_named_layer(name, batch, size):
    torch.manual_seed(0)
    sd = {k: v.numpy() for k, v in torch_reference.build(name).state_dict().items()}
    rng = np.random.default_rng(0)
    for key in sd:  # randomise BatchNorm so inference mode is really tested
        if key.endswith(("running_mean", ".bias")):
            sd[key] = 0.2 * rng.standard_normal(sd[key].shape).astype(np.float32)
        elif key.endswith("running_var") or (key.endswith(".weight") and sd[key].ndim == 1):
            sd[key] = (0.5 + rng.uniform(size=sd[key].shape)).astype(np.float32)
    images = rng.uniform(size=(batch, size, size, 3)).astype(np.float32)
    errors, _ = relative_errors(name, sd, images)
    assert max(errors.values()) < RTOL, errors


@pytest.fixture(scope="module")
def pngs():
    """The 20 lossless foolbox CIFAR-10 PNGs, (20, 32, 32, 3) in [0, 1], and their labels."""
    if SHARED is None:
        pytest.skip("shared folder not found: set JFV_SHARED")
    files = sorted((SHARED / "data/images/foolbox").glob("cifar10_*.png"))
    assert len(files) == 20, files
    from PIL import Image

    images = np.stack([np.asarray(Image.open(f).convert("RGB"), np.float32) / 255.0 for f in files])
    return images, np.asarray([int(f.stem.split("_")[2]) for f in files])


def checkpoint(depth: int) -> Path:
    found = sorted((SHARED / "weights/cifar10-resnet").glob(f"resnet{depth}-*.th"))
    if not found:
        pytest.skip(f"resnet{depth}-*.th not in {SHARED / 'weights/cifar10-resnet'}")
    return found[0]


@needs_shared
@pytest.mark.parametrize("depth", cifar_resnet.CIFAR_DEPTHS)
def test_real_checkpoints_equal_pytorch_and_classify_the_lossless_pngs(depth, pngs):
    images, targets = pngs
    sd = convert.read_checkpoint(checkpoint(depth))
    errors, ours = relative_errors(f"cifar_resnet{depth}", sd, images)
    assert max(errors.values()) < RTOL, errors  # logits (and every layer) equal PyTorch's
    predicted = np.argmax(np.asarray(ours["logits"]), -1)
    assert tuple(np.flatnonzero(predicted != targets)) == KNOWN_MISSES[depth], (predicted, targets)


@needs_shared
def test_converted_checkpoint_loads_and_classifies_jpegs(tmp_path):
    """The CLI path end to end; then a spread of test JPEGs (lossy copies, so ~81 % is expected)."""
    convert.main(["--model=cifar_resnet20", f"--checkpoint={checkpoint(20)}", f"--out={tmp_path / 'cifar_resnet20'}"])
    model = models.load("cifar_resnet20", weights_dir=tmp_path)
    assert tuple(model.module.mean) == TRAINED_MEAN and tuple(model.module.std) == TRAINED_STD
    assert model.labels == labels.CIFAR10_CLASSES
    archive = SHARED / "data/cifar10/cifar10-jpeg.tar.gz"
    if not archive.exists():
        pytest.skip(f"{archive} not found")
    from PIL import Image

    images, targets = [], []
    with tarfile.open(archive) as tar:
        members = [m for m in tar if m.isfile() and m.name.startswith("test/") and m.name.endswith(".jpg")]
        for member in members[:: len(members) // JPEG_SUBSET][:JPEG_SUBSET]:
            images.append(np.asarray(Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB"),
                                     np.float32) / 255.0)
            targets.append(labels.CIFAR10_CLASSES.index(member.name.split("/")[1]))
    assert len(set(targets)) == 10
    logits = np.concatenate([np.asarray(model(jnp.asarray(np.stack(images[i:i + 20])))["logits"])
                             for i in range(0, len(images), 20)])
    accuracy = float(np.mean(np.argmax(logits, -1) == np.asarray(targets)))
    assert accuracy > 0.72, accuracy
