"""Digests of four jobs' outputs, recorded before the package moved (issue 27) and checked after.

The jobs run through the command line (``python -m jfv``), which no move changes:

- ``quickstart``: the README's quick-start config, shrunk to 2 channels, 8 steps, 64 px (PNG bytes);
- ``layer_resumed``: a two-group layer job killed (SIGKILL) after its third checkpoint and run
  again (the PNG bytes of the resumed run);
- ``top_patches``: the tiny top-patches job (every array of ``topk.npz``);
- ``train_epoch``: one epoch of the tiny training run (every parameter of the saved model);
  re-recorded when the end of lookahead began to fold in the last ``steps % 5`` steps (issue 28),
  a change of result by design.

Float results depend on the CPU's vector width and the jax/jaxlib versions, so digests are kept per
platform (``platform_key()``); on a platform with none recorded the test skips and says how to record:

    python tests/golden.py --record        # runs the four jobs here and adds this platform's digests
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from killable import run_jfv  # noqa: E402

DIGESTS = Path(__file__).resolve().parent / "golden_digests.json"


def platform_key() -> str:
    """CPU model and vector width, jax and jaxlib versions: what decides the bits of a float result."""
    import jax
    import jaxlib

    model, avx512 = platform.machine(), False
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = next(l.split(":", 1)[1].strip() for l in text.splitlines() if l.startswith("model name"))
        avx512 = " avx512f " in text
    except (OSError, StopIteration):
        pass
    return f"{model} | avx512f={avx512} | jax {jax.__version__} | jaxlib {jaxlib.__version__}"


def array_digest(arrays: dict) -> str:
    """sha256 over sorted names, dtypes, shapes and bytes (npz and orbax files carry timestamps)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(np.asarray(arrays[name]))
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def png_digests(workdir: Path) -> dict[str, str]:
    return {p.relative_to(workdir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((workdir / "channels").glob("*.png"))}


def _check(proc) -> None:
    if proc.returncode != 0:
        raise RuntimeError(f"jfv exited {proc.returncode}: {proc.stderr[-2000:]}")


def quickstart(tmp: Path) -> dict[str, str]:
    out = tmp / "quickstart"
    _check(run_jfv(["--config=configs/vgg16_channels.py", f"--workdir={out}", "--config.channels=0:2",
                    "--config.steps=8", "--config.image_size=64", "--config.progress=False"]))
    return png_digests(out)


def layer_resumed(tmp: Path) -> dict[str, str]:
    out = tmp / "layer"
    args = ["--config=configs/layer_tiny.py", f"--workdir={out}", "--config.channels=0:4"]
    killed = run_jfv(args, kill=("save_state", 3, "SIGKILL"))
    if killed.returncode != -9:
        raise RuntimeError(f"the layer job was not killed (exit {killed.returncode}): {killed.stderr[-2000:]}")
    _check(run_jfv(args))
    return png_digests(out)


def top_patches(tmp: Path) -> dict[str, str]:
    out = tmp / "top_patches"
    _check(run_jfv(["--config=configs/top_patches_tiny.py", f"--workdir={out}"]))
    with np.load(out / "topk.npz", allow_pickle=False) as z:
        return {"topk.npz": array_digest({k: z[k] for k in z.files})}


def train_epoch(tmp: Path) -> dict[str, str]:
    import orbax.checkpoint as ocp

    out = tmp / "train"
    _check(run_jfv(["--config=configs/cifar10_train_tiny.py", f"--workdir={out}", "--config.epochs=1",
                    "--config.small_epochs=0", "--config.am_steps=0"]))
    model = json.loads((out / "manifest.json").read_text())["model"]["path"]
    with ocp.StandardCheckpointer() as ckpt:
        params = ckpt.restore((out / model / "params").resolve())
    leaves = {"/".join(str(getattr(k, "key", k)) for k in path): v
              for path, v in __import__("jax").tree_util.tree_leaves_with_path(params)}
    return {f"{model}/params": array_digest(leaves)}


CASES = {"quickstart": quickstart, "layer_resumed": layer_resumed, "top_patches": top_patches,
         "train_epoch": train_epoch}


def recorded() -> dict:
    return json.loads(DIGESTS.read_text()) if DIGESTS.exists() else {}


def record() -> None:
    table, key = recorded(), platform_key()
    with tempfile.TemporaryDirectory() as tmp:
        table[key] = {name: case(Path(tmp)) for name, case in CASES.items()}
    DIGESTS.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"recorded {len(CASES)} jobs' digests for {key} in {DIGESTS}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit("usage: python tests/golden.py --record")
    record()
