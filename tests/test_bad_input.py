"""Bad input, one row each: what is run, the message it must print, the exit status.

Rows about the command line run the real entry points (``python -m jfv``, ``jfv.convert``,
``jfv.weights``) in subprocesses: one ``prog: error: ...`` line, the status, no traceback. Rows about
a value or a file run the recipe or the validator in-process, which is what the commands run, and
expect a user error (a ``ValueError`` or ``WeightsError``: printed as one line, status 2).
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from tiny_data import cifar_archive
from PIL import Image

from configs import attribute_tiny, tiny
from jfv import models
from jfv.runtime import outputs
from jfv.attribution import targets
from jfv.attribution.cam import check_spatial
from jfv.models import weights
from jfv.recipes.attribution import attribute
from jfv.recipes.optvis import channels
from jfv.recipes import common
from jfv.optvis import presets

REPO = Path(__file__).resolve().parents[1]


def cli(module: str, *args: str, limit_bytes: int | None = None) -> subprocess.CompletedProcess:
    """Runs ``python -m module args``; ``limit_bytes`` caps the size of any file it writes, so a write
    fails as on a full disk (EFBIG instead of ENOSPC; Python ignores SIGXFSZ)."""
    command = [sys.executable, "-m", module, *args]
    if limit_bytes:
        command = [sys.executable, "-c", f"import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_FSIZE, "
                   f"({limit_bytes}, {limit_bytes})); sys.argv = {[module, *args]!r}; "
                   f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


def assert_one_line(res: subprocess.CompletedProcess, prog: str, fragment: str, status: int = 2) -> None:
    assert res.returncode == status, (res.returncode, res.stderr[-3000:])
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    lines = [line for line in res.stderr.splitlines() if line.startswith(f"{prog}: ")]
    assert len(lines) == 1 and fragment in lines[0], res.stderr[-3000:]


def png_bytes(array: np.ndarray, bit_depth: int, colour_type: int, size: tuple[int, int] | None = None) -> bytes:
    """A PNG written by hand, so 16-bit greyscale and lying headers can be made (Pillow writes neither)."""
    h, w = array.shape[:2]
    rows = b"".join(b"\0" + array[y].astype(">u2" if bit_depth == 16 else "u1").tobytes() for y in range(h))
    width, height = size or (w, h)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


# --- the command line: config files, usage ------------------------------------------------------

CONFIG_FILES = {
    "syntax.py": ("def get_config(:\n", "has a syntax error at line 1"),
    "norecipe.py": ("import ml_collections\n\ndef get_config():\n    return ml_collections.ConfigDict({'x': 1})\n",
                    "names no recipe: set c.recipe in get_config() to one of accentuate, activations, atlas, attribute, channels"),
    "notes.txt": ("hello\n", "fails to load (NameError: name 'hello' is not defined)"),
    "helpers.py": ("X = 1\n", "defines no get_config()"),
    "photo.png": (None, "is not a config file (not Python text)"),
}

CLI_ROWS = [
    ("missing-config", "jfv", ["--config={tmp}/nope.py", "--workdir={tmp}/out"], "config file {tmp}/nope.py does not exist"),
    *[(f"config-{name}", "jfv", [f"--config={{tmp}}/{name}", "--workdir={tmp}/out"], fragment)
      for name, (_, fragment) in CONFIG_FILES.items()],
    ("no-workdir", "jfv", ["--config=configs/tiny.py"], "--workdir is required"),
    ("stray-argument", "jfv", ["--config=configs/tiny.py", "--workdir={tmp}/out", "extra"], "unexpected arguments: extra"),
    ("not-an-image", "jfv", ["--config=configs/attribute_tiny.py", "--workdir={tmp}/out", "--config.images={tmp}/notes.txt",
                             "--config.methods=saliency", "--config.faithfulness_steps=0"],
     "{tmp}/notes.txt is not an image jfv can read: pass PNG, JPEG or BMP files"),
    ("unknown-preset", "jfv", ["--config=configs/tiny.py", "--workdir={tmp}/out", "--config.preset=quick"],
     "unknown preset 'quick': use --config.preset= one of lucid, draft"),
    ("preset-and-steps", "jfv", ["--config=configs/tiny.py", "--workdir={tmp}/out", "--config.preset=draft",
                                 "--config.steps=50"],
     f"preset=draft sets steps={presets.DRAFT.steps} and learning_rate="),
    ("preset-and-learning-rate", "jfv", ["--config=configs/layer_tiny.py", "--workdir={tmp}/out", "--config.preset=draft",
                                         "--config.learning_rate=0.3"],
     "so --config.learning_rate would be ignored: drop it, or use --config.preset=lucid"),
    ("weights-positional", "jfv.weights", ["alexnet", "--weights_dir={tmp}/w"], "unexpected argument 'alexnet': name the model with --model"),
    ("weights-bad-flag", "jfv.weights", ["--modle=alexnet", "--weights_dir={tmp}/w"], "Unknown command line flag 'modle'"),
    ("convert-out-is-a-file", "jfv.convert", ["--model=cifar_resnet20", "--checkpoint={tmp}/nope.th", "--out={tmp}/photo.png"],
     "{tmp}/photo.png is a file, not a folder for a checkpoint; nothing was written: pass --out=a new or empty folder"),
]


@pytest.mark.parametrize("module,args,fragment", [r[1:] for r in CLI_ROWS], ids=[r[0] for r in CLI_ROWS])
def test_command_line(tmp_path, module, args, fragment):
    for name, (text, _) in CONFIG_FILES.items():
        (tmp_path / name).write_bytes(text.encode() if text else b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR")
    res = cli(module, *(a.format(tmp=tmp_path) for a in args))
    assert_one_line(res, module, fragment.format(tmp=tmp_path))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert not (tmp_path / "w").exists()  # jfv.weights built nothing it was not asked for


def test_ctrl_c_is_one_line_and_status_130(tmp_path):
    workdir = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "jfv", "--config=configs/tiny.py", f"--workdir={workdir}",
                             "--config.steps=100000"], cwd=REPO, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as under a terminal
    deadline = time.time() + 120
    while not workdir.exists() and time.time() < deadline:  # the recipe has started
        time.sleep(0.05)
    time.sleep(1.5)  # loading, compiling or rendering
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=120)[1]
    # the channels recipe is a resumable job: its in-flight group is checkpointed (or, stopped before
    # it began, nothing is), so the same command resumes; no image, gallery or manifest is half-written
    last = err.strip().splitlines()[-1]
    assert proc.returncode == 130 and last.startswith("jfv: interrupted"), err[-3000:]
    assert last == "jfv: interrupted" or "run the same command again to resume" in last, last
    assert "Traceback" not in err
    left = [p.relative_to(workdir) for p in workdir.rglob("*") if p.is_file()]
    assert all(p.parts[0] in ("job.json", "state") for p in left), left


def test_full_disk_for_the_workdir(tmp_path):
    res = cli("jfv", "--config=configs/tiny.py", f"--workdir={tmp_path / 'out'}", limit_bytes=1500)
    assert_one_line(res, "jfv", f"File too large ({tmp_path / 'out'}): check the path, its permissions and the free disk space")
    # only the job's claim (job.json, whole: written atomically) is left, so the same command resumes
    left = [p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert [str(p) for p in left] in ([], ["job.json"]), left


# --- config values, through the recipe and the entry points' reporting --------------------------

def run_channels(tmp_path, **overrides) -> str:
    """The channels recipe on configs/tiny.py must refuse with a user error (``ValueError``: the
    entry points print it as one line, status 2), quickly and writing nothing; returns its message."""
    config = tiny.get_config()
    for key, value in overrides.items():
        config[key] = value
    workdir = tmp_path / "out"
    start = time.time()
    with pytest.raises(ValueError) as e:
        channels.run(config, str(workdir))
    message = str(e.value)
    assert "\n" not in message and len(message) < 400, message[:2000]
    assert time.time() - start < 60
    assert not [p for p in workdir.rglob("*") if p.is_file()]
    return message


CONFIG_ROWS = [
    ({"learning_rate": float("nan")}, "learning_rate must be a finite number > 0 (e.g. 0.05), got nan"),
    ({"learning_rate": -0.05}, "learning_rate must be a finite number > 0 (e.g. 0.05), got -0.05"),
    ({"batch_size": -4}, "batch_size must be an integer >= 0 (channels per compiled call; 0 = all at once), got -4"),
    ({"devices": -2}, "devices must be an integer >= -1 (-1 all, 0 none, n the first n), got -2"),
    ({"channels": "3,3"}, "channel(s) 3 listed more than once: name each channel once"),
    ({"channels": "0:1000000"}, "channels 0:1000000 out of range for vgg16 layer 'conv3_1', which has 256 channels: use 0..255"),
    ({"channels": "0:100000000"}, "channels 0:100000000 out of range for vgg16 layer 'conv3_1'"),
    ({"channels": ",".join(map(str, range(250, 5000)))}, "channel(s) 256, 257, 258, 259, 260, 261, 262, 263, 264, 265, ... (4744 in all) out of range"),
    ({"seed": 2**64}, "seed must be an integer in 0..4294967295 (jax.random.key takes a 32-bit seed), got 18446744073709551616"),
    ({"seed": -1}, "seed must be an integer in 0..4294967295"),
    ({"images_per_channel": 0}, "images_per_channel must be an integer >= 1 (images rendered per channel), got 0"),
    ({"class_name": "cat"}, "class_name='cat' needs objective=class (it is channel)"),
    ({"precision": "float16"}, "precision must be one of float32, bfloat16 (the network's compute dtype), got 'float16'"),
    ({"objective": "class"}, "objective=class maximises a class logit, on layer 'logits', not 'conv3_1': set --config.layer=logits"),
]


@pytest.mark.parametrize("overrides,fragment", CONFIG_ROWS, ids=[f"{k}={str(v)[:12]}" for r in CONFIG_ROWS for k, v in r[0].items()])
def test_config_value(tmp_path, overrides, fragment):
    assert fragment in run_channels(tmp_path, **overrides)


@pytest.mark.parametrize("size", [20000, 100000])
def test_image_size_that_cannot_fit_is_refused_with_the_figure(tmp_path, vgg16, size):
    err = run_channels(tmp_path, image_size=size)
    need = common.BACKWARD_FACTOR * common.activation_bytes(vgg16, size, 2)
    assert f"image_size {size} with 2 image(s) per call needs about {need / 1e9:.1f} GB for vgg16's activations" in err
    assert "lower image_size or batch_size" in err


def test_activation_bytes_and_the_memory_check(vgg16, monkeypatch):
    # VGG16 at 32 px: conv, relu (x2 per conv) and pool outputs of the five blocks, plus the input.
    blocks = [(2, 32, 64), (2, 16, 128), (3, 8, 256), (3, 4, 512), (3, 2, 512)]
    floats = 3 * 32 * 32 + sum(2 * convs * side * side * width + (side // 2) ** 2 * width for convs, side, width in blocks)
    assert common.activation_bytes(vgg16, 32, 5) == 5 * 4 * floats
    monkeypatch.setattr(common, "available_memory", lambda: 10**6)
    need = f"{2 * 5 * 4 * floats / 1e6:.0f} MB"
    with pytest.raises(common.ConfigError, match=rf"image_size 32 with 5 image\(s\) per call needs about {need} .* but 1 MB are free"):
        common.check_memory(vgg16, 32, 5, "image_size")
    common.check_memory(vgg16, 8, 1, "image_size")  # too small for vgg16 to run: left to the size checks


def test_sweep_strengths_must_be_finite():
    assert common.check_finite([-0.01, 0.0, 2], "strengths") == [-0.01, 0.0, 2.0]
    with pytest.raises(common.ConfigError, match=r"strengths must be finite numbers, got nan, inf: e\.g\."):
        common.check_finite([0.1, float("nan"), float("inf")], "strengths")


# --- neuron positions on non-square maps --------------------------------------------------------

def test_neuron_position_off_a_non_square_map(vgg16):
    assert vgg16.output_shapes((32, 64))["conv4_3"] == (1, 4, 8, 512)
    targets.neuron("conv4_3", 7, y=3, x=7).check(vgg16, (32, 64))
    with pytest.raises(targets.TargetError, match=r"\(y=5, x=2\) is off the 4x8 map of 'conv4_3' at image size 32x64: use 0 <= y < 4,"):
        targets.neuron("conv4_3", 7, y=5, x=2).check(vgg16, (32, 64))
    assert check_spatial(vgg16, "conv4_3", (32, 64)) == (4, 8)


# --- image files ---------------------------------------------------------------------------------

def test_unreadable_images_name_the_file(tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)).save(photo)
    Image.open(photo).save(tmp_path / "photo.jpg", quality=90)
    for name in ("photo.png", "photo.jpg"):
        data = (tmp_path / name).read_bytes()
        (tmp_path / f"cut_{name}").write_bytes(data[: len(data) // 2])
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "bomb.png").write_bytes(png_bytes(np.zeros((1, 1, 3)), 8, 2, size=(30000, 30000)))
    (tmp_path / "big.png").write_bytes(png_bytes(np.zeros((1, 1, 3)), 8, 2, size=(10000, 10000)))
    cases = {
        "notes.png": "is not an image jfv can read: pass PNG, JPEG or BMP files",
        "cut_photo.png": "is truncated or corrupt (image file is truncated",
        "cut_photo.jpg": "is truncated or corrupt (image file is truncated",
        "bomb.png": "is too large to read (Image size (900000000 pixels) exceeds limit",
        "big.png": "is 10000x10000 pixels, more than jfv reads (89 megapixels): shrink it first",
    }
    for name, fragment in cases.items():
        with pytest.raises(outputs.ImageReadError) as e:
            outputs.load_image(tmp_path / name, 32)
        assert str(e.value).startswith(str(tmp_path / name)) and fragment in str(e.value), str(e.value)
        assert isinstance(e.value, ValueError)  # status 2, printed as it is


def test_16_bit_png_is_scaled_not_saturated(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 64).round().astype(np.uint16), (48, 1))
    (tmp_path / "ramp16.png").write_bytes(png_bytes(ramp, 16, 0))
    Image.fromarray(np.round(ramp / 257).astype(np.uint8)).save(tmp_path / "ramp8.png")
    deep, eight = outputs.load_image(tmp_path / "ramp16.png", 32), outputs.load_image(tmp_path / "ramp8.png", 32)
    assert deep.shape == (32, 32, 3) and deep.dtype == np.float32
    np.testing.assert_allclose(deep, eight, atol=1 / 255)
    assert 0.4 < deep.mean() < 0.6 and deep.min() < 0.2  # a ramp, not white


def test_same_file_names_in_two_folders_keep_both_outputs(tmp_path):
    assert attribute.output_names(["a/cat.jpg", "b/cat.jpg", "c/dog.png"]) == ["a_cat", "b_cat", "dog"]
    assert attribute.output_names(["x/a/cat.jpg", "y/a/cat.jpg"]) == ["00_a_cat", "01_a_cat"]
    rng = np.random.default_rng(0)
    for folder, value in (("a", 0.2), ("b", 0.8)):
        (tmp_path / folder).mkdir()
        pixels = np.clip(value + 0.1 * rng.standard_normal((40, 40, 3)), 0, 1)
        Image.fromarray((pixels * 255).astype(np.uint8)).save(tmp_path / folder / "cat.png")
    c = attribute_tiny.get_config()
    c.images = f"{tmp_path / 'a'},{tmp_path / 'b'}"
    c.methods = "saliency"
    c.faithfulness_steps = 0
    manifest = attribute.run(c, str(tmp_path / "out"))
    assert manifest["grid_layout"]["rows"] == ["a_cat", "b_cat"]
    inputs = [np.asarray(Image.open(tmp_path / "out" / "overlays" / f"{n}_input.png"), np.float32) / 255 for n in ("a_cat", "b_cat")]
    assert abs(inputs[0].mean() - 0.2) < 0.05 and abs(inputs[1].mean() - 0.8) < 0.05
    assert [e["methods"]["saliency"]["picture"] for e in manifest["images"]] == [
        "overlays/a_cat_saliency.png", "overlays/b_cat_saliency.png"]


# --- weights -------------------------------------------------------------------------------------

def small_checkpoint(path: Path) -> Path:
    torch = pytest.importorskip("torch")
    from jfv.models import torch_reference

    torch.manual_seed(0)
    torch.save(torch_reference.build("cifar_resnet20").state_dict(), path)
    return path


def convert_main(capsys, *argv: str) -> tuple[int, str]:
    from jfv.models import convert

    status = convert.main(list(argv))
    return status, capsys.readouterr().err


def test_convert_never_replaces_a_folder_it_did_not_write(tmp_path, capsys):
    checkpoint = small_checkpoint(tmp_path / "resnet20.th")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("three years of work")
    status, err = convert_main(capsys, "--model=cifar_resnet20", f"--checkpoint={checkpoint}", f"--out={out}", "--noverify")
    assert status == 2 and err == (
        f"jfv.convert: error: {out} is not empty and is not a jfv checkpoint (it holds thesis.tex); nothing was "
        "written: pass --out=a new or empty folder, or move those files away\n")
    assert (out / "thesis.tex").read_text() == "three years of work" and sorted(os.listdir(out)) == ["thesis.tex"]
    # a jfv checkpoint there is replaced, with nothing left beside it
    status, _ = convert_main(capsys, "--model=cifar_resnet20", f"--checkpoint={checkpoint}", f"--out={tmp_path / 'w'}", "--noverify")
    status2, _ = convert_main(capsys, "--model=cifar_resnet20", f"--checkpoint={checkpoint}", f"--out={tmp_path / 'w'}", "--noverify")
    assert status == status2 == 0 and sorted(os.listdir(tmp_path / "w")) == ["manifest.json", "params"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_convert_checkpoint_that_is_a_folder(tmp_path, capsys):
    folder = tmp_path / "downloads"
    folder.mkdir()
    (folder / "resnet20-12fca82f.th").write_bytes(b"")
    status, err = convert_main(capsys, "--model=cifar_resnet20", f"--checkpoint={folder}", f"--out={tmp_path / 'w'}")
    assert status == 2 and (f"checkpoint {folder} is a folder (it holds resnet20-12fca82f.th); pass "
                            "--checkpoint=PATH to the .pth/.th file itself") in err


def test_weights_of_another_model_name_it_and_the_rebuild(alexnet, tmp_path):
    import shutil

    shutil.copytree(weights.weights_dir() / "alexnet", tmp_path / "vgg16")
    with pytest.raises(weights.WeightsError) as e:
        models.load("vgg16", weights_dir=tmp_path)
    assert str(e.value) == (f"{tmp_path / 'vgg16'} holds alexnet weights, not vgg16; delete {tmp_path / 'vgg16'} "
                            f"and rebuild it: python -m jfv.weights --model=vgg16 --weights_dir={tmp_path}")
    with pytest.raises(weights.WeightsError, match="holds alexnet weights, not vgg16"):
        models.load("vgg16", checkpoint=tmp_path / "vgg16")


def test_concurrent_first_use_conversions_all_succeed(tmp_path):
    """VGG16's 60 MB take long enough to write and read that, before, about one run in two had a
    process fail ("No such file or directory") when another replaced the folder under it."""
    procs = [subprocess.Popen([sys.executable, "-m", "jfv.weights", "--model=vgg16", f"--weights_dir={tmp_path}"],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    assert all(code == 0 and out == f"vgg16: {tmp_path / 'vgg16'}\n" for code, out, _ in results), results
    assert os.listdir(tmp_path) == ["vgg16"]  # no temporary folder left
    assert models.load("vgg16", weights_dir=tmp_path).layers["conv5_3"] == 512


def test_a_slower_converter_keeps_the_checkpoint_another_finished(tmp_path):
    first = {"conv": {"kernel": np.ones((2, 2), np.float32)}}
    weights.save(tmp_path / "m", first, {"model": "m", "by": "first"})
    weights.save(tmp_path / "m", {"conv": {"kernel": np.zeros((2, 2), np.float32)}}, {"model": "m", "by": "second"},
                 replace=False)
    params, manifest = weights.restore(tmp_path / "m", "rebuild", model="m")
    assert manifest["by"] == "first" and params["conv"]["kernel"].sum() == 4
    assert os.listdir(tmp_path) == ["m"]


def test_a_killed_conversion_leaves_nothing_that_breaks_the_next(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "jfv.weights", "--model=alexnet", f"--weights_dir={tmp_path}"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not any(p.name.startswith(".alexnet.tmp.") for p in tmp_path.iterdir()) and time.time() < deadline:
        time.sleep(0.002)
    proc.kill()
    proc.wait()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".alexnet.tmp.")]  # its leftover
    res = cli("jfv.weights", "--model=alexnet", f"--weights_dir={tmp_path}")
    assert res.returncode == 0, res.stderr[-2000:]
    assert os.listdir(tmp_path) == ["alexnet"]


def test_stale_temporary_folders_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    stale = tmp_path / f".m.tmp.{host}.{int(dead.stdout)}.abc123"
    live = tmp_path / f".m.tmp.{host}.{os.getpid()}.def456"
    other = tmp_path / f".m.tmp.elsewhere.{int(dead.stdout)}.ghi789"  # another host's: left alone
    for folder in (stale, live, other):
        (folder / "params").mkdir(parents=True)
    weights.save(tmp_path / "m", {"a": np.ones(3, np.float32)}, {"model": "m"})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m", live.name, other.name])


def test_full_disk_while_writing_weights_is_one_line(tmp_path, monkeypatch):
    res = cli("jfv.weights", "--model=alexnet", f"--weights_dir={tmp_path}", limit_bytes=100_000)
    assert_one_line(res, "jfv.weights", f"cannot write weights to {tmp_path / 'alexnet'} (File too large); free some space")
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(weights.shutil, "disk_usage", lambda path: type("U", (), {"free": 5 * 10**6})())
    with pytest.raises(weights.WeightsError, match=r"not enough disk space for the weights in .*: about 45 MB needed, 5 MB free"):
        weights.save(tmp_path / "m", {"a": np.ones(10**7, np.float32)}, {"model": "m"})
    assert os.listdir(tmp_path) == []


def test_truncated_checkpoint_is_one_line_without_orbax_echoes(vgg16, tmp_path):
    """orbax's worker threads used to add "Event loop is closed" tracebacks, some runs in two."""
    import shutil

    shutil.copytree(weights.weights_dir() / "vgg16", tmp_path / "w" / "vgg16")
    data = max((p for p in (tmp_path / "w" / "vgg16" / "params").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    for _ in range(3):
        res = cli("jfv", "--config=configs/tiny.py", f"--workdir={tmp_path / 'out'}", f"--config.weights_dir={tmp_path / 'w'}")
        assert_one_line(res, "jfv", f"weights checkpoint {tmp_path / 'w' / 'vgg16' / 'params'} is corrupt or truncated")


def test_force_rebuild_never_deletes_a_folder_of_other_files(tmp_path):
    (tmp_path / "alexnet").mkdir()
    (tmp_path / "alexnet" / "notes.txt").write_text("mine")
    res = cli("jfv.weights", "--model=alexnet", f"--weights_dir={tmp_path}", "--force")
    assert_one_line(res, "jfv.weights", f"{tmp_path / 'alexnet'} is not empty and is not a jfv checkpoint (it holds notes.txt)")
    assert (tmp_path / "alexnet" / "notes.txt").read_text() == "mine"


def test_a_nan_sweep_strength_is_refused_by_the_recipe():
    from configs import reg_sweep
    from jfv import recipes

    config = reg_sweep.get_config()
    config.strengths = "-0.01,nan"
    with pytest.raises(common.ConfigError, match=r"strengths must be finite numbers, got nan") as e:
        recipes.recipe("sweep").check(config)  # recipe=sweep: the study's check, before any model is loaded
    assert "\n" not in str(e.value)



# --- data: unreadable folders, damaged archives, unfinished runs (issue 31) ----------------------

ARCHIVE = "{tmp}/shared/data/cifar10/cifar10-jpeg.tar.gz"
DAMAGED = (f"CIFAR-10 archive {ARCHIVE} is damaged (truncated or corrupt: EOFError: Compressed file ended before "
           f"the end-of-stream marker was reached): copy or download it again to <shared>/data/cifar10/cifar10-jpeg.tar.gz")
DATA_ROWS = [
    ("top-patches-unreadable-folder", ["--config=configs/top_patches_tiny.py", "--config.dataset={tmp}/broken"],
     "none of the 3 images of image folder {tmp}/broken (flat, 3 images) can be read (e.g. UnidentifiedImageError: "
     "cannot identify image file '{tmp}/broken/a.jpg'): replace or remove the unreadable files, or point at a folder "
     "of images (JPEG, PNG, ...)"),
    *[(f"{name}-truncated-cifar", [f"--config=configs/{config}", "--config.shared_dir={tmp}/shared"], DAMAGED)
      for name, config in (("top-patches", "top_patches_tiny.py"), ("embeddings", "embeddings_tiny.py"),
                           ("gap-gmp", "gap_gmp_tiny.py"), ("train", "cifar10_train_tiny.py"))],
    ("atlas-of-unfinished-top-patches", ["--config=configs/atlas.py", "--config.top_patches_dir={tmp}/tp"],
     "top_patches_dir {tmp}/tp is an unfinished top_patches run (1 piece finished, no manifest.json yet: stopped, "
     "killed or still running): run the same command again (the same config, on the workdir {tmp}/tp) to resume "
     "and finish it, then run this again"),
]


@pytest.mark.parametrize("args,fragment", [r[1:] for r in DATA_ROWS], ids=[r[0] for r in DATA_ROWS])
def test_bad_data_is_one_line_and_status_2(tmp_path, args, fragment):
    """Every image of a folder unreadable (it used to end with status 0 and an empty result), a
    truncated CIFAR-10 archive in each recipe that reads one (it used to end in an EOFError
    traceback), the atlas of a top-patches run stopped before it finished."""
    from jfv.runtime.jobs import Job

    (tmp_path / "broken").mkdir()
    for name in ("a", "b", "c"):
        (tmp_path / "broken" / f"{name}.jpg").write_bytes(b"not a jpeg " * 8)
    cifar_archive(Path(ARCHIVE.format(tmp=tmp_path)), cut=0.3)
    with Job(tmp_path / "tp", "top_patches", {"k": 4}) as job:  # stopped after its pass
        job.create()
        job.finish("pass", {"images": 30})
    res = cli("jfv", *(a.format(tmp=tmp_path) for a in args), f"--workdir={tmp_path / 'out'}")
    assert_one_line(res, "jfv", fragment.format(tmp=tmp_path))


def test_skipped_images_are_named_on_the_console(capsys):
    """``common.report_skipped``: one line on stderr, the count and the first paths; nothing when none."""
    skipped = [(f"photos/{i}.jpg", "UnidentifiedImageError: cannot identify image file 'photos/{i}.jpg'")
               for i in range(5)]
    line = common.report_skipped(skipped, 40, "image folder photos (flat, 40 images)")
    assert capsys.readouterr().err == line + "\n"
    assert line == ("note: skipped 5 of 40 images of image folder photos (flat, 40 images) that could not be "
                    "read: photos/0.jpg, photos/1.jpg, photos/2.jpg and 2 more")
    records = [{"name": "a.jpg", "reason": "OSError: Truncated File Read"}, {"name": "b.jpg", "reason": "x"}]
    assert common.report_skipped(records, 2, "2 listed paths") == (
        "note: skipped 2 of 2 images of 2 listed paths that could not be read: a.jpg, b.jpg")
    assert common.report_skipped(["c.png", "d.png"], 9, "CIFAR-10 test", shown=0) == (
        "note: skipped 2 of 9 images of CIFAR-10 test that could not be read: c.png and 1 more")
    capsys.readouterr()
    assert common.report_skipped([], 40, "image folder photos") == "" and capsys.readouterr().err == ""


# --- CIFAR-10 in its official forms: damaged, of another layout, missing (issue 31) -------------------

URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
RELEASE = "{tmp}/cifar-10-python.tar.gz"  # cut at 10%: inside its first batch, whichever that is
RELEASE_DAMAGED = (f"CIFAR-10 archive {RELEASE} is damaged (truncated or corrupt: EOFError: Compressed file ended before "
                   f"the end-of-stream marker was reached): download it again from {URL}")
RELEASE_ROWS = [
    ("top-patches-truncated-python-release", ["--config=configs/top_patches_tiny.py", f"--config.cifar10_path={RELEASE}"],
     RELEASE_DAMAGED),
    ("train-binary-batch-of-wrong-length", ["--config=configs/cifar10_train_tiny.py", "--config.cifar10_path={tmp}/bin"],
     f"CIFAR-10 archive {{tmp}}/bin/cifar-10-batches-bin is damaged (truncated or corrupt: test_batch.bin has 92090 bytes, "
     f"not a whole number of 3073-byte records (a label byte and 3072 pixel bytes)): download it again from {URL}"),
    ("embeddings-folder-without-batches", ["--config=configs/embeddings_tiny.py", "--config.cifar10_path={tmp}/broken"],
     "CIFAR-10 folder {tmp}/broken holds no CIFAR-10 batches: expected the python version (cifar-10-python.tar.gz or its "
     "folder cifar-10-batches-py/: data_batch_1..5, test_batch), the binary version"),
    ("gap-gmp-missing-cifar10-path", ["--config=configs/gap_gmp_tiny.py", "--config.cifar10_path={tmp}/nope.tar.gz"],
     f"CIFAR-10 archive not found at {{tmp}}/nope.tar.gz (--config.cifar10_path={{tmp}}/nope.tar.gz): download the python "
     f"version (cifar-10-python.tar.gz) from {URL} and pass --config.cifar10_path=PATH (the .tar.gz or the folder it "
     f"unpacks to) or set JFV_CIFAR10=PATH"),
    ("train-no-cifar-anywhere", ["--config=configs/cifar10_train_tiny.py", "--config.shared_dir={tmp}/empty"],
     "CIFAR-10 archive not found at {tmp}/empty/data/cifar10: cifar10_path is not given, $JFV_CIFAR10 is not set, "
     "and that folder holds none of cifar10-jpeg.tar.gz, cifar-10-python.tar.gz, cifar-10-batches-py, "
     f"cifar-10-binary.tar.gz, cifar-10-batches-bin: download the python version (cifar-10-python.tar.gz) from {URL}"),
]


def bad_releases(tmp: Path) -> None:
    """What RELEASE_ROWS and the in-process rows point at: a cut python release, a binary release whose
    test batch is 100 bytes short, a folder of no batches, an empty shared folder."""
    from tiny_data import cifar_release, cifar_release_archive, release_files

    cifar_release_archive(Path(RELEASE.format(tmp=tmp)), "python", True, cut=0.1)
    bins = release_files(cifar_release(per_class=3), "binary")
    cifar_release_archive(tmp / "bin", "binary", False, files={**bins, "test_batch.bin": bins["test_batch.bin"][:-100]})
    (tmp / "broken").mkdir(exist_ok=True)
    (tmp / "broken" / "a.jpg").write_bytes(b"not a jpeg " * 8)
    (tmp / "empty").mkdir(exist_ok=True)


@pytest.mark.parametrize("args,fragment", [r[1:] for r in RELEASE_ROWS], ids=[r[0] for r in RELEASE_ROWS])
def test_bad_releases_are_one_line_and_status_2(tmp_path, monkeypatch, args, fragment):
    """The command line: one line naming the archive (or where jfv looked, and where to get CIFAR-10),
    status 2, no traceback."""
    monkeypatch.delenv("JFV_CIFAR10", raising=False)
    bad_releases(tmp_path)
    res = cli("jfv", *(a.format(tmp=tmp_path) for a in args), f"--workdir={tmp_path / 'out'}")
    assert_one_line(res, "jfv", fragment.format(tmp=tmp_path))


def _sensitivity_model(config):
    """A 10-class classifier with random weights (the recipe's own needs a train run's weights)."""
    import jax
    import jax.numpy as jnp
    from tiny_model import TinyClassifier

    from jfv.models.base import Model

    module = TinyClassifier(classes=10)
    params = module.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
    layers = {k: v.shape[-1] for k, v in module.apply({"params": params}, jnp.zeros((1, 32, 32, 3))).items()}
    return Model(name="tiny10", module=module, params=params, layers=layers, image_size=32, source="random")


# Every recipe that reads CIFAR-10, on a truncated python release: the config, overrides that let it
# reach its data without a trained model, and the recipe module's model loader to replace.
CIFAR_RECIPES = [
    ("top_patches_tiny", {}, None), ("embeddings_tiny", {}, None), ("gap_gmp_tiny", {}, None),
    ("cifar10_train_tiny", {}, None), ("cifar10_bn_padding_tiny", {}, None),
    ("checkerboard_cifar", {"model": "gray_cnn", "weights_dir": "", "layers": "conv3"}, None),
    ("cifar10_sensitivity", {}, "jfv.recipes.attribution.sensitivity"),
]


@pytest.mark.parametrize("name,overrides,patch", CIFAR_RECIPES, ids=[r[0] for r in CIFAR_RECIPES])
def test_every_cifar_recipe_refuses_a_damaged_release_in_one_line(tmp_path, monkeypatch, name, overrides, patch):
    """In-process (what the command runs; ``report`` prints a DatasetError as its one line, status 2).
    ``score`` reads CIFAR-10 through the same ``make_source`` lines as ``embeddings`` but needs a scored
    run first, so it is not here."""
    import importlib

    from jfv import recipes
    from jfv.analysis import datasets

    monkeypatch.delenv("JFV_CIFAR10", raising=False)
    bad_releases(tmp_path)
    config = importlib.import_module(f"configs.{name}").get_config()
    config.cifar10_path = RELEASE.format(tmp=tmp_path)
    for key, value in overrides.items():
        config[key] = value
    if patch:
        monkeypatch.setattr(importlib.import_module(patch), "config_model", _sensitivity_model)
    with pytest.raises(datasets.DatasetError) as e:
        recipes.get(config.recipe).run(config, str(tmp_path / "out"))
    assert str(e.value) == RELEASE_DAMAGED.format(tmp=tmp_path)
