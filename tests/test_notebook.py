"""The example notebook ``docs/notebooks/quickstart.ipynb`` runs end to end in a fresh kernel with its
tiny settings (``JFV_NOTEBOOK_TINY=1``): no cell errs, every picture cell shows an image, and the
stored notebook holds no outputs."""

from __future__ import annotations

import base64
import io
import os
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "docs" / "notebooks" / "quickstart.ipynb"
CELL_TIMEOUT_S = 180  # one cell: the first VGG16 compile on a busy 2-core CPU
PICTURE = "picture"  # the tag of cells whose result is a picture


def test_the_stored_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    assert nb.metadata.kernelspec.name == "python3"
    assert sum(PICTURE in c.metadata.get("tags", []) for c in code) == 5


def test_each_section_is_at_most_five_lines_from_import_to_picture():
    """Counted as the README counts: non-blank code lines of a picture cell (the model definition of
    section 4, the user's own network, is its own cell)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if PICTURE in cell.metadata.get("tags", []):
            lines = [line for line in cell.source.splitlines() if line.strip()]
            assert len(lines) <= 5, cell.source


def test_the_notebook_runs_with_tiny_settings(shared, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("JFV_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("JFV_SHARED", str(shared))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    start = time.time()
    client.execute()  # raises CellExecutionError naming the cell on any error
    took = time.time() - start
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        assert not [o for o in cell.outputs if o.output_type == "error"], cell.source
        if PICTURE in cell.metadata.get("tags", []):
            pngs = [o.data["image/png"] for o in cell.outputs if "image/png" in o.get("data", {})]
            assert len(pngs) == 1, cell.source
            im = Image.open(io.BytesIO(base64.b64decode(pngs[0])))
            assert im.mode == "RGB" and min(im.size) >= 64, (cell.source, im.size)
    listing = nb.cells[-1].outputs[0].data["text/plain"]  # section 5: the attribute recipe's files
    for name in ("grid.png", "index.html", "manifest.json", "overlays/cat_grad_cam.png", "overlays/cat_input.png"):
        assert name in listing
    assert took < 600, f"the tiny notebook took {took:.0f} s"
