"""ResNets and full VGG16/AlexNet: parity with PyTorch at every named layer, layer tables, labels.

The references here are written in plain functional PyTorch (``F.conv2d`` ...) in float64 straight
from the state dict, independently of ``jfv.models.torch_reference``: they read torchvision's keys
by name, so a wrong key layout fails here as well as a wrong computation. BatchNorm running stats
are randomised so inference-mode BatchNorm is really exercised; odd sizes (97, 33 px) expose any
asymmetric padding.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="parity tests need torch (pip install 'jfv[torch]')")
F = torch.nn.functional

from jfv.models import labels
from jfv import models
from jfv.optvis import objectives  # noqa: E402
from jfv.models.convert import convert_state_dict  # noqa: E402
from jfv.models import torch_reference  # noqa: E402

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision
IMAGENET_STD = (0.229, 0.224, 0.225)  # torchvision
RTOL = 2e-5  # max |jfv float32 - torch float64| / max |torch| per layer


def shared_dir() -> Path | None:
    """$JFV_SHARED, else <repo>/../shared, else /work/shared."""
    env = os.environ.get("JFV_SHARED")
    for path in ([Path(env)] if env else []) + [Path(__file__).resolve().parents[2].parent / "shared",
                                                Path("/work/shared")]:
        if path.is_dir():
            return path
    return None


def random_state_dict(name: str, seed: int = 0) -> dict[str, np.ndarray]:
    """torchvision-layout weights (torch's default init) with randomised BatchNorm affine and stats."""
    torch.manual_seed(seed)
    sd = {k: v.detach().clone() for k, v in torch_reference.build(name).state_dict().items()}
    g = torch.Generator().manual_seed(seed + 1)
    for key in list(sd):
        if key.endswith("running_mean"):
            prefix = key[: -len("running_mean")]
            c = sd[key].shape[0]
            sd[prefix + "running_mean"] = 0.2 * torch.randn(c, generator=g)
            sd[prefix + "running_var"] = 0.5 + torch.rand(c, generator=g)
            sd[prefix + "weight"] = 0.5 + torch.rand(c, generator=g)
            sd[prefix + "bias"] = 0.2 * torch.randn(c, generator=g)
    return {k: v.numpy() for k, v in sd.items()}


def _normalise(x):
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def _bn(x, sd, p):
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"],
                        sd[f"{p}.bias"], training=False, eps=1e-5)


def ref_resnet(sd, x, bottleneck: bool, stages) -> dict:
    """torchvision ResNet forward, functional; returns jfv's names, NCHW."""
    out = {}
    x = out["conv1"] = F.conv2d(_normalise(x), sd["conv1.weight"], stride=2, padding=3)
    x = out["bn1"] = _bn(x, sd, "bn1")
    x = out["relu"] = F.relu(x)
    x = out["maxpool"] = F.max_pool2d(x, 3, 2, 1)
    for s, n in enumerate(stages, start=1):
        for b in range(n):
            p = f"layer{s}.{b}"
            stride = 2 if (s > 1 and b == 0) else 1
            if bottleneck:
                y = F.relu(_bn(F.conv2d(x, sd[f"{p}.conv1.weight"]), sd, f"{p}.bn1"))
                y = F.relu(_bn(F.conv2d(y, sd[f"{p}.conv2.weight"], stride=stride, padding=1), sd, f"{p}.bn2"))
                y = _bn(F.conv2d(y, sd[f"{p}.conv3.weight"]), sd, f"{p}.bn3")
            else:
                y = F.relu(_bn(F.conv2d(x, sd[f"{p}.conv1.weight"], stride=stride, padding=1), sd, f"{p}.bn1"))
                y = _bn(F.conv2d(y, sd[f"{p}.conv2.weight"], padding=1), sd, f"{p}.bn2")
            if f"{p}.downsample.0.weight" in sd:
                x = _bn(F.conv2d(x, sd[f"{p}.downsample.0.weight"], stride=stride), sd, f"{p}.downsample.1")
            x = out[p] = F.relu(y + x)
        out[f"layer{s}"] = x
    x = out["avgpool"] = x.mean((2, 3))
    out["logits"] = F.linear(x, sd["fc.weight"], sd["fc.bias"])
    return out


VGG16_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)  # torchvision vgg16 features indices
VGG16_BLOCKS = (2, 2, 3, 3, 3)


def ref_vgg16(sd, x) -> dict:
    out = {}
    x = _normalise(x)
    convs = iter(VGG16_CONVS)
    for b, n in enumerate(VGG16_BLOCKS, start=1):
        for i in range(1, n + 1):
            k = next(convs)
            x = out[f"conv{b}_{i}"] = F.conv2d(x, sd[f"features.{k}.weight"], sd[f"features.{k}.bias"], padding=1)
            x = out[f"relu{b}_{i}"] = F.relu(x)
        x = out[f"pool{b}"] = F.max_pool2d(x, 2, 2)
    return _ref_head(sd, x, 7, (0, 3, 6), out)


def ref_alexnet(sd, x) -> dict:
    out = {}
    x = _normalise(x)
    spec = ((0, 4, 2, True), (3, 1, 2, True), (6, 1, 1, False), (8, 1, 1, False), (10, 1, 1, True))
    for n, (k, stride, pad, pool) in enumerate(spec, start=1):
        x = out[f"conv{n}"] = F.conv2d(x, sd[f"features.{k}.weight"], sd[f"features.{k}.bias"], stride, pad)
        x = out[f"relu{n}"] = F.relu(x)
        if pool:
            x = out[f"pool{n}"] = F.max_pool2d(x, 3, 2)
    return _ref_head(sd, x, 6, (1, 4, 6), out)


def _ref_head(sd, x, pooled, idx, out):
    x = out["avgpool"] = F.adaptive_avg_pool2d(x, pooled)
    x = torch.flatten(x, 1)  # NCHW order
    x = out["fc6"] = F.linear(x, sd[f"classifier.{idx[0]}.weight"], sd[f"classifier.{idx[0]}.bias"])
    x = out["relu6"] = F.relu(x)
    x = out["fc7"] = F.linear(x, sd[f"classifier.{idx[1]}.weight"], sd[f"classifier.{idx[1]}.bias"])
    x = out["relu7"] = F.relu(x)
    out["logits"] = F.linear(x, sd[f"classifier.{idx[2]}.weight"], sd[f"classifier.{idx[2]}.bias"])
    return out


REFERENCES = {
    "resnet18": lambda sd, x: ref_resnet(sd, x, False, (2, 2, 2, 2)),
    "resnet34": lambda sd, x: ref_resnet(sd, x, False, (3, 4, 6, 3)),
    "resnet50": lambda sd, x: ref_resnet(sd, x, True, (3, 4, 6, 3)),
    "resnet101": lambda sd, x: ref_resnet(sd, x, True, (3, 4, 23, 3)),
    "resnet152": lambda sd, x: ref_resnet(sd, x, True, (3, 8, 36, 3)),
    "vgg16_classifier": ref_vgg16,
    "alexnet_classifier": ref_alexnet,
}


def parity_errors(name: str, sizes: tuple[tuple[int, int], ...], seed: int = 0) -> dict[str, float]:
    """Worst relative error per layer of jfv (float32, eager) against the float64 reference."""
    sd = random_state_dict(name, seed)
    params = jax.tree.map(jnp.asarray, convert_state_dict(name, sd))
    module = models.ARCHITECTURES[name].module()
    sd64 = {k: torch.from_numpy(v).double() for k, v in sd.items()}
    worst: dict[str, float] = {}
    for batch, size in sizes:
        images = np.random.default_rng(seed + size).uniform(size=(batch, size, size, 3)).astype(np.float32)
        ours = module.apply({"params": params}, jnp.asarray(images))
        with torch.no_grad():
            ref = REFERENCES[name](sd64, torch.from_numpy(images).double().permute(0, 3, 1, 2))
        assert list(ours) == list(ref), f"{name}: jfv names {list(ours)} != reference {list(ref)}"
        for layer, value in ref.items():
            value = value.numpy()
            value = value.transpose(0, 2, 3, 1) if value.ndim == 4 else value
            assert ours[layer].shape == value.shape, (name, layer, size)
            err = float(np.max(np.abs(np.asarray(ours[layer], np.float64) - value)) / np.max(np.abs(value)))
            worst[layer] = max(worst.get(layer, 0.0), err)
    return worst


@pytest.mark.parametrize(
    "name, sizes",
    [
        ("resnet18", ((2, 97),)),
        ("resnet34", ((1, 33),)),
        ("resnet50", ((1, 97),)),
        ("resnet101", ((1, 33),)),
        ("resnet152", ((1, 33),)),
        ("vgg16_classifier", ((1, 97),)),  # pool5 3x3 -> adaptive 7x7 and the NCHW flatten
        ("alexnet_classifier", ((2, 97), (1, 224))),
    ],
)
def test_parity_every_named_layer(name, sizes):
    errors = parity_errors(name, sizes)
    worst = max(errors, key=errors.get)
    print(f"{name}: worst relative error {errors[worst]:.2e} at {worst}")
    assert errors[worst] < RTOL, {k: v for k, v in errors.items() if v >= RTOL}


@pytest.fixture(scope="module")
def resnet18():
    return models.load("resnet18", pretrained=False, seed=1)


def test_layer_tables_name_every_block():
    model = models.load("resnet50", pretrained=False)
    names = list(model.layers)
    assert names[:4] == ["conv1", "bn1", "relu", "maxpool"]
    assert names[-3:] == ["layer4", "avgpool", "logits"]
    assert sum(n.count(".") == 1 for n in names) == 3 + 4 + 6 + 3
    assert model.layers["layer3.1"] == 1024 and model.layers["layer4"] == 2048
    shapes = model.output_shapes(224)
    assert shapes["layer4"] == (1, 7, 7, 2048) and shapes["avgpool"] == (1, 2048)
    assert shapes["logits"] == (1, 1000) and shapes["maxpool"] == (1, 56, 56, 64)
    with pytest.raises(models.UnknownLayerError, match="layer4.2"):
        model.check_layer("layer4.3")
    module = models.ARCHITECTURES["vgg16_classifier"].module()
    x = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)
    table = models._layer_table(module, jax.eval_shape(module.init, jax.random.key(0), x)["params"], 224)
    assert list(table)[-7:] == ["pool5", "avgpool", "fc6", "relu6", "fc7", "relu7", "logits"]


def test_classifier_convs_share_the_feature_models_names():
    """Full VGG16/AlexNet hold the feature models' conv params under the same names."""
    for full, features in (("vgg16_classifier", "vgg16"), ("alexnet_classifier", "alexnet")):
        a = jax.eval_shape(models.ARCHITECTURES[full].module().init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
        module = {"vgg16": models.vgg.VGG16Features, "alexnet": models.vgg.AlexNetFeatures}[features]()
        b = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
        assert {k: v for k, v in a["params"].items() if k.startswith("conv")} == b["params"]


def test_objectives_on_every_kind_of_layer(resnet18):
    """channel, neuron and class logit read ResNet blocks, stages and logits by name; finite gradients."""
    model = resnet18
    x = jax.random.uniform(jax.random.key(0), (1, 33, 33, 3))
    cases = (
        (objectives.channel("layer4", 3), lambda a: jnp.mean(a["layer4"][..., 3])),
        (objectives.neuron("layer3.1", 5), lambda a: a["layer3.1"][0, 1, 1, 5]),
        (objectives.class_logit(1), lambda a: a["logits"][0, 1]),
        (objectives.channel("avgpool", 7), lambda a: a["avgpool"][0, 7]),
    )
    total = sum((objective for objective, _ in cases[1:]), cases[0][0])
    # one compiled program for values and gradient: eager autodiff of a ResNet is slower on CPU
    acts, grad = jax.jit(lambda im: (model(im), jax.grad(lambda i: total(model(i)))(im)))(x)
    for objective, expected in cases:
        np.testing.assert_allclose(objective(acts), expected(acts), rtol=1e-6)
    assert np.all(np.isfinite(grad)) and np.any(grad != 0)


def test_relu_and_pool_are_swappable_fields(resnet18):
    model = resnet18
    x = jax.random.uniform(jax.random.key(0), (1, 33, 33, 3))
    base = model(x)
    leaky = model.with_module(relu=lambda v: jax.nn.leaky_relu(v, 0.1))(x)
    assert not np.allclose(base["layer1.0"], leaky["layer1.0"])
    np.testing.assert_array_equal(base["bn1"], leaky["bn1"])  # before the first ReLU
    seen = []
    pooled = model.with_module(pool=lambda v, w, s, p=0: seen.append((w, s, p)) or models.vgg.max_pool(v, w, s, p))
    np.testing.assert_array_equal(pooled(x)["logits"], base["logits"])
    assert seen == [(3, 2, 1)]


def test_load_never_converted_names_the_convert_command(tmp_path):
    with pytest.raises(models.WeightsError) as e:
        models.load("resnet50", weights_dir=tmp_path)
    assert f"python -m jfv.models convert --model=resnet50 --checkpoint=" in str(e.value)
    assert f"--out={tmp_path / 'resnet50'}" in str(e.value)


def test_imagenet_class_names():
    if shared_dir() is None:
        pytest.skip("shared folder with ImageNet labels not found: set JFV_SHARED")
    names = labels.imagenet(shared_dir() / "data/imagenet-labels/lucent_imagenet_labels.txt")
    assert len(names) == 1000
    assert labels.class_index("goldfish", names) == 1
    assert labels.class_index("Carassius_auratus", names) == 1
    assert labels.class_index("great white shark", names) == 2
    with pytest.raises(labels.UnknownClassError, match="'goldfish'"):
        labels.class_index("goldfsh", names)


def test_cifar_class_names():
    assert labels.class_index("cat", labels.CIFAR10_CLASSES) == 3
    assert labels.class_index("Truck", labels.CIFAR10_CLASSES) == 9
    with pytest.raises(labels.UnknownClassError, match="'airplane'"):
        labels.class_index("aeroplane", labels.CIFAR10_CLASSES)


def test_bad_labels_file_is_refused(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("0 cat\n2 dog\n")
    with pytest.raises(labels.LabelsError, match="not 0..1"):
        labels.read_labels(path)


@pytest.mark.parametrize("config", ["resnet50_layer4", "resnet50_class", "cifar_resnet20_class"])
def test_configs_name_real_models_layers_and_classes(config):
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "configs" / f"{config}.py"
    spec = importlib.util.spec_from_file_location(config, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    c = module.get_config()
    assert c.recipe == "channels" and c.model in models.names()
    arch = models.ARCHITECTURES[c.model]
    net = arch.module()
    x = jax.ShapeDtypeStruct((1, c.image_size, c.image_size, 3), jnp.float32)
    table = models._layer_table(net, jax.eval_shape(net.init, jax.random.key(0), x)["params"], c.image_size)
    assert c.layer in table
    if c.class_name:
        names = labels.CIFAR10_CLASSES if c.model.startswith("cifar") else labels.imagenet() if shared_dir() else None
        if names is None:
            pytest.skip("ImageNet labels not found: set JFV_SHARED")
        assert 0 <= labels.class_index(c.class_name, names) < table["logits"]
