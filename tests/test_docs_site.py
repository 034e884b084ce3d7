"""The docs site: ``python -m jfv.runtime.docs`` builds it with ``mkdocs build --strict``, offline;
the API reference comes from the docstrings; a broken link or a docstring section that does not
parse fails the build; without the docs extra the command says which extra to install."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("optvis", "attribution", "analysis", "evaluation", "models", "training", "runtime")


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "site"
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "jfv.runtime.docs", "-d", str(out)], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path_factory.getbasetemp())
    seconds = time.perf_counter() - start
    assert res.returncode == 0, res.stderr[-5000:]
    assert "WARNING" not in res.stderr, res.stderr[-5000:]
    assert seconds < 60, f"the strict docs build took {seconds:.0f} s"
    return out


def copy_of_the_docs(tmp_path: Path) -> Path:
    """What the site is built from, in a folder of its own (the package linked, not copied)."""
    for name in ("mkdocs.yml", "README.md", "BUILD.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "docs", tmp_path / "docs", ignore=shutil.ignore_patterns("site_*.png", "__pycache__"))
    shutil.copytree(ROOT / "benchmarks", tmp_path / "benchmarks", ignore=shutil.ignore_patterns("*.py", "*.sh", "__pycache__"))
    (tmp_path / "weights").mkdir()
    shutil.copy(ROOT / "weights" / "README.md", tmp_path / "weights" / "README.md")
    for name in ("jfv", "configs"):
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    return tmp_path / "mkdocs.yml"


def test_the_api_reference_is_generated_from_the_docstrings(site):
    optvis = (site / "reference" / "optvis.html").read_text()
    assert 'id="jfv.optvis.render.render_channels"' in optvis
    assert "Renders one image per channel, vmapped" in optvis  # render_channels' docstring
    assert 'id="jfv.optvis.visualise.visualise"' in optvis
    flat = (site / "reference" / "jfv.html").read_text()
    assert 'id="jfv.visualise"' in flat and 'id="jfv.render_channels"' in flat
    # a doctest renders as code ("Example:" is the examples section), not as nested quotes
    assert "<blockquote>\n<blockquote>" not in optvis
    assert re.search(r'<code>(<span[^>]*>)*&gt;&gt;&gt;', optvis)


def test_the_site_opens_from_the_file_system_with_pages_from_outside_docs(site):
    index = (site / "index.html").read_text()
    assert 'href="usage.html"' in index and 'href="reference/jfv.html"' in index  # relative, no directory URLs
    assert (site / "benchmarks" / "RESULTS.html").is_file() and (site / "build.html").is_file()
    usage = (site / "usage.html").read_text()
    assert 'href="build.html"' in usage  # [BUILD.md](../BUILD.md) on the page
    assert not list(site.rglob("hooks.py")) and not list(site.rglob("site_*.png"))


def test_every_module_of_the_subpackages_has_reference(tmp_path):
    missing = []
    for package in PACKAGES:
        page = (ROOT / "docs" / "reference" / f"{package}.md").read_text()
        folder = ROOT / "jfv" / package
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            if parts[-1] != "__main__" and f"::: {module}\n" not in page + "\n":
                missing.append(f"{module} (docs/reference/{package}.md)")
    assert not missing, "add a '::: <module>' line for: " + ", ".join(missing)


def test_every_flat_name_is_on_the_flat_page():
    import jfv

    page = (ROOT / "docs" / "reference" / "jfv.md").read_text()
    missing = [name for name in jfv.__all__
               if f"::: jfv.{name}\n" not in page and f"`jfv.{name}`" not in page]  # objects, or modules in the table
    assert not missing, "add to docs/reference/jfv.md: " + ", ".join(missing)


def test_a_link_to_a_missing_file_fails_the_strict_build(tmp_path):
    config = copy_of_the_docs(tmp_path)
    usage = tmp_path / "docs" / "usage.md"
    usage.write_text(usage.read_text() + "\nSee [the results](../benchmarks/NO_SUCH_RESULTS.md).\n")
    res = mkdocs_build(config, tmp_path / "site")
    assert res.returncode != 0
    assert "'../benchmarks/NO_SUCH_RESULTS.md', but the target is not found" in res.stderr, res.stderr[-3000:]
    assert "Aborted with 1 warnings in strict mode" in res.stdout


def test_links_out_of_docs_become_pages_or_text_and_a_good_copy_builds(tmp_path):
    config = copy_of_the_docs(tmp_path)
    usage = tmp_path / "docs" / "usage.md"
    usage.write_text(usage.read_text() + "\nSee [the results](../benchmarks/RESULTS.md#am-throughput-benchmarksam_throughputpy), "
                     "[configs/vgg16_channels.py](../configs/vgg16_channels.py) and [the README](../README.md).\n")
    bench = tmp_path / "benchmarks" / "study.md"  # a page from outside docs/, linking into it
    bench.write_text(bench.read_text() + "\nSee [the guide](../docs/study.md#outputs) and [RESULTS.md](RESULTS.md).\n")
    res = mkdocs_build(config, tmp_path / "site")
    assert res.returncode == 0, res.stderr[-3000:]
    bench_html = (tmp_path / "site" / "benchmarks" / "study.html").read_text()
    assert 'href="../study.html#outputs"' in bench_html and 'href="RESULTS.html"' in bench_html
    html = (tmp_path / "site" / "usage.html").read_text()
    assert 'href="benchmarks/RESULTS.html#am-throughput-benchmarksam_throughputpy"' in html  # the anchor kept, and checked
    assert "<code>configs/vgg16_channels.py</code>" in html and 'href="../configs' not in html
    assert 'href="index.html">the README</a>' in html


def test_a_docstring_section_that_does_not_parse_fails_the_strict_build(tmp_path):
    config = copy_of_the_docs(tmp_path)
    (tmp_path / "probe.py").write_text('''"""A module whose docstring the build must refuse."""


def f(x, y):
    """Adds.

    Args:
        x: a number.
        y: another.
    Returns:
        x + y.
    """
    return x + y
''')
    page = tmp_path / "docs" / "reference" / "runtime.md"
    page.write_text(page.read_text() + "\n::: probe\n")
    res = mkdocs_build(config, tmp_path / "site")
    assert res.returncode != 0
    assert "probe.py:10: Possible section skipped" in res.stderr, res.stderr[-3000:]
    assert "Aborted with 1 warnings in strict mode" in res.stdout


def test_the_readme_is_a_front_page_whose_links_resolve():
    text = (ROOT / "README.md").read_text()
    assert len(text) <= 8000  # the reference material lives in docs/
    for command in ("pip install -e . && python -m jfv --config=configs/vgg16_channels.py --workdir=runs/vgg16",
                    "pip install -e '.[test]' && python -m pytest -q -n 2 --dist loadfile tests"):  # CI runs the second
        assert f"```\n{command}\n```" in text
    targets = re.findall(r"\]\(([^)\s#]+)", text)
    assert "docs/usage.md" in targets and "docs/maco.png" in targets
    missing = [t for t in targets if not re.match(r"[a-z]+:", t) and not (ROOT / t).exists()]
    assert not missing, missing


def test_without_the_docs_extra_one_line_names_it_and_exits_2(tmp_path):
    blocked = ("import sys, runpy; sys.modules['mkdocs'] = None; "  # as if mkdocs were not installed
               "runpy.run_module('jfv.runtime.docs', run_name='__main__')")
    res = subprocess.run([sys.executable, "-c", blocked, "-d", str(tmp_path / "site")], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    lines = [line for line in res.stderr.splitlines() if "jfv.runtime.docs" in line]
    assert lines == ["jfv.runtime.docs: error: install the docs extra: pip install -e '.[docs]' (mkdocs is missing)"]
    assert "Traceback" not in res.stderr and not (tmp_path / "site").exists()
