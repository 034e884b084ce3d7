"""jfv.convert: PyTorch checkpoints in, orbax checkpoints out; anything not used exactly is refused."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the converter reads PyTorch checkpoints (pip install 'jfv[torch]')")

from jfv.models import convert
from jfv import models  # noqa: E402
from jfv.models import torch_reference  # noqa: E402

SMALL = "cifar_resnet20"  # the cheapest registered architecture with BatchNorm and a classifier


def state_dict(name: str, seed: int = 0) -> dict[str, "torch.Tensor"]:
    torch.manual_seed(seed)
    sd = torch_reference.build(name).state_dict()
    for key in sd:
        if key.endswith("running_var"):
            sd[key] = 0.5 + torch.rand_like(sd[key])
        elif key.endswith("running_mean"):
            sd[key] = 0.1 * torch.randn_like(sd[key])
    return sd


def run(argv) -> str:
    """Runs the CLI's main; returns the one message of a refusal (exit status 2, no traceback)."""
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert convert.main(argv) == 2
    assert err.getvalue().startswith("jfv.convert: error: ") and "Traceback" not in err.getvalue()
    return err.getvalue()


def test_converts_verifies_and_loads(tmp_path, capsys):
    sd = state_dict(SMALL)
    path = tmp_path / "resnet20.pth"
    torch.save(sd, path)
    out = tmp_path / "weights" / SMALL
    assert convert.main([f"--model={SMALL}", f"--checkpoint={path}", f"--out={out}"]) == 0
    assert "matches PyTorch at every layer" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"] == SMALL and manifest["source_sha256"] == convert.sha256_file(path)
    assert manifest["verified"]["max_relative_error"] < convert.VERIFY_RTOL
    assert {"jax", "flax", "orbax-checkpoint"} <= set(manifest["versions"])
    for model in (models.load(SMALL, checkpoint=out), models.load(SMALL, weights_dir=tmp_path / "weights")):
        np.testing.assert_array_equal(model.params["layer2_0"]["conv1"]["kernel"],
                                      sd["layer2.0.conv1.weight"].numpy().transpose(2, 3, 1, 0))
        np.testing.assert_array_equal(model.params["layer3_2"]["bn2"]["var"], sd["layer3.2.bn2.running_var"].numpy())
        np.testing.assert_array_equal(model.params["linear"]["kernel"], sd["linear.weight"].numpy().T)
    assert model.labels[3] == "cat" and model.image_size == 32


def test_reads_legacy_pickle_with_state_dict_and_module_prefix(tmp_path):
    """akamaster's format: torch's pre-1.6 pickle, {'state_dict': {'module.' + key: ...}}."""
    sd = state_dict(SMALL, seed=1)
    path = tmp_path / "legacy.th"
    torch.save({"best_prec1": 91.7, "state_dict": {"module." + k: v for k, v in sd.items()}}, path,
               _use_new_zipfile_serialization=False)
    read = convert.read_checkpoint(path)
    assert set(read) == set(sd)
    np.testing.assert_array_equal(read["bn1.running_mean"], sd["bn1.running_mean"].numpy())


def test_refuses_a_truncated_file(tmp_path):
    path = tmp_path / "resnet20.pth"
    torch.save(state_dict(SMALL), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    message = run([f"--model={SMALL}", f"--checkpoint={path}", f"--out={out}"])
    assert "truncated or corrupt" in message and str(path) in message
    assert not out.exists()


def test_refuses_a_missing_file(tmp_path):
    assert "does not exist" in run([f"--model={SMALL}", f"--checkpoint={tmp_path / 'nope.pth'}"])


def test_refuses_the_wrong_architecture_and_names_the_right_one(tmp_path):
    path = tmp_path / "resnet20.pth"
    torch.save(state_dict(SMALL), path)
    out = tmp_path / "out"
    message = run(["--model=cifar_resnet32", f"--checkpoint={path}", f"--out={out}"])
    assert "does not match cifar_resnet32" in message
    assert "missing keys: layer1.3.bn1.bias" in message  # 32 has 5 blocks per stage, 20 has 3
    assert "--model=cifar_resnet20" in message
    assert not out.exists()
    message = run(["--model=resnet18", f"--checkpoint={path}", f"--out={out}"])
    assert "37 missing keys: fc.bias, fc.weight," in message
    assert "38 unexpected keys: layer1.2.bn1.bias," in message  # resnet18 has 2 blocks per stage
    assert "shape mismatches: bn1.bias (16,) (expected (64,))" in message
    assert "--model=cifar_resnet20" in message


def test_refuses_missing_extra_and_misshapen_keys(tmp_path):
    sd = {k: v.numpy() for k, v in state_dict(SMALL).items()}
    del sd["layer2.1.bn2.running_var"]
    sd["layer9.0.conv1.weight"] = np.zeros((3, 3), np.float32)
    sd["linear.weight"] = np.zeros((10, 65), np.float32)
    with pytest.raises(convert.ConversionError) as e:
        convert.convert_state_dict(SMALL, sd)
    message = str(e.value)
    assert "1 missing keys: layer2.1.bn2.running_var" in message
    assert "1 unexpected keys: layer9.0.conv1.weight" in message
    assert "1 shape mismatches: linear.weight (10, 65) (expected (10, 64))" in message
    path = tmp_path / "extra.pth"
    torch.save({**state_dict(SMALL), "extra.weight": torch.zeros(2)}, path)
    assert "unexpected keys: extra.weight" in run([f"--model={SMALL}", f"--checkpoint={path}",
                                                   f"--out={tmp_path / 'out'}"])


def test_accepts_num_batches_tracked_only_on_batchnorms():
    sd = {k: v.numpy() for k, v in state_dict(SMALL).items()}
    sd["bn1.num_batches_tracked"] = np.asarray(7)
    convert.convert_state_dict(SMALL, sd)
    sd["linear.num_batches_tracked"] = np.asarray(7)
    with pytest.raises(convert.ConversionError, match="unexpected keys: linear.num_batches_tracked"):
        convert.convert_state_dict(SMALL, sd)


def test_verification_catches_a_wrong_conversion():
    sd = {k: v.numpy() for k, v in state_dict(SMALL).items()}
    params = convert.convert_state_dict(SMALL, sd)
    np.testing.assert_array_less(max(convert.verify(SMALL, params, sd, 32).values()), convert.VERIFY_RTOL)
    # the transposition a naive converter gets wrong: a conv kernel with its spatial axes swapped
    k = params["layer1_0"]["conv2"]["kernel"]
    params["layer1_0"]["conv2"]["kernel"] = k.transpose(1, 0, 2, 3)
    with pytest.raises(convert.ConversionError, match="differs from the PyTorch reference"):
        convert.verify(SMALL, params, sd, 32)


def test_torch_keys_follow_torchvision_layout():
    assert convert.torch_key("resnet50", ("layer3_1", "downsample_1", "mean")) == "layer3.1.downsample.1.running_mean"
    assert convert.torch_key("vgg16_classifier", ("conv5_3", "kernel")) == "features.28.weight"
    assert convert.torch_key("vgg16_classifier", ("fc8", "bias")) == "classifier.6.bias"
    assert convert.torch_key("alexnet_classifier", ("fc6", "kernel")) == "classifier.1.weight"
    names = {k for k in torch_reference.build("alexnet_classifier").state_dict()}
    assert set(convert.expected_params("alexnet_classifier")) == names
