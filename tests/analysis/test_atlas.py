"""The atlas: built from a tiny top-patches run and a tiny AM run, it opens in headless Chromium with no
broken image or link; its histograms count the right images; an AM run of another model is refused
with one line naming both models."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest

from jfv.analysis import atlas
from jfv.recipes.analysis import atlas as atlas_recipe

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def weights_dir():
    os.environ.setdefault("JFV_WEIGHTS_DIR", "/tmp/jfv-weights-analysis")


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shared):
    """(top-patches DIR, AM DIR): the tiny top-patches config, and 2 AM channels of conv3_1."""
    from configs import tiny, top_patches_tiny
    from jfv import recipes

    tp = tmp_path_factory.mktemp("top_patches")
    c = top_patches_tiny.get_config()
    c.shared_dir = str(shared)
    c.channels = "0:6"
    c.group_size = 6
    c.block_image_size = 32
    recipes.get("top_patches").run(c, str(tp))
    am = tmp_path_factory.mktemp("am")
    recipes.get("channels").run(tiny.get_config(), str(am))  # conv3_1 channels 3 and 5
    return tp, am


@pytest.fixture(scope="module")
def site(runs, tmp_path_factory):
    from configs import atlas as config

    out = tmp_path_factory.mktemp("site")
    c = config.get_config()
    c.top_patches_dir, c.am_dir = str(runs[0]), str(runs[1])
    manifest = atlas_recipe.run(c, str(out))
    assert manifest["channel_pages"] == 12 and manifest["am_channels"] == 2
    return out


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.hrefs, self.body = [], [], {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a["src"])
        elif tag == "a" and "href" in a:
            self.hrefs.append(a["href"])
        elif tag == "body":
            self.body = a


def parse(text: str) -> Links:
    p = Links()
    p.feed(text)
    return p


def check_links(page: Path, links: Links) -> None:
    for ref in links.imgs + links.hrefs:
        url = urlparse(ref)
        assert not url.scheme and not url.netloc and not ref.startswith("/"), f"{page}: {ref} is not relative"
        target = (page.parent / unquote(url.path)).resolve()
        assert target.is_file(), f"{page}: {ref} does not resolve"


def test_every_page_links_only_to_files_that_exist(site):
    pages = sorted(site.rglob("*.html"))
    assert len(pages) == 1 + 2 + 12
    for page in pages:
        check_links(page, parse(page.read_text()))


def test_a_channel_page_shows_am_patches_projections_histograms_and_navigation(site, runs):
    text = (site / "conv3_1" / "0003.html").read_text()
    links = parse(text)
    assert "../am/channels/conv3_1_0003.png" in links.imgs
    assert sum("_proj.png" in s for s in links.imgs) == 8 and sum("max_" in s for s in links.imgs) == 8
    assert {"0002.html", "0004.html", "index.html", "../index.html", "../conv3_3/0003.html"} <= set(links.hrefs)
    assert text.count('class="histogram"') == 2 and "top 4" in text
    # The histogram counts every image once: 30 bars' worth of titles summing to 30.
    counts = [int(t.rsplit(": ", 1)[1].split("<")[0]) for t in text.split("<title>")[2:32]]
    assert sum(counts) == 30
    assert "no activation maximisation image" in (site / "conv3_1" / "0000.html").read_text()
    summary = json.loads((runs[0] / "layers" / "conv3_1.json").read_text())
    assert f'{summary["channels"][3]["max"][0]["value"]:.4g}' in text


def test_histogram_svg_counts_and_marks():
    svg = atlas.histogram_svg(np.array([0.0, 1.0, 1.0, 2.0, np.nan]), bins=2, marks={"top 1": 2.0})
    titles = [t.split("</title>")[0] for t in svg.split("<title>")[1:]]
    assert titles == ["0 to 1: 1", "1 to 2: 3"]
    assert svg.count("<line") == 1 and "top 1" in svg


@pytest.mark.skipif(chromium() is None, reason="no Chromium: apt-get install chromium installs it (Debian's package)")
def test_the_atlas_opens_in_headless_chromium_with_no_broken_images(site):
    for rel in ("index.html", "conv3_1/index.html", "conv3_1/0003.html", "conv3_3/0005.html"):
        page = site / rel
        res = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                              "--window-size=1200,4000", "--dump-dom", page.as_uri()],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr[-2000:]
        links = parse(res.stdout)
        assert links.body.get("data-broken-images") == "0", (rel, links.body)  # set by the page once loaded
        assert int(links.body["data-images"]) == len(links.imgs) > 0
        check_links(page, links)


def _cli(workdir, *extra):
    return subprocess.run([sys.executable, "-m", "jfv", "--config=configs/atlas.py", f"--workdir={workdir}", *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_an_am_run_of_another_model_is_refused_in_one_line(runs, tmp_path):
    other = tmp_path / "other_am"
    shutil.copytree(runs[1], other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["model"] = "alexnet"
    (other / "manifest.json").write_text(json.dumps(manifest))
    res = _cli(tmp_path / "site", f"--config.top_patches_dir={runs[0]}", f"--config.am_dir={other}")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"jfv: error: the AM run {other} was made with alexnet but the top patches {runs[0]} with vgg16: point "
        f"am_dir at a vgg16 layer or channels run (or leave it empty)"]
    assert not (tmp_path / "site").exists() or not [p for p in (tmp_path / "site").iterdir()
                                                     if not p.name.startswith(".jfv")]


def test_bad_atlas_inputs(runs, tmp_path):
    from configs import atlas as config

    c = config.get_config()
    with pytest.raises(ValueError, match="top_patches_dir is empty"):
        atlas_recipe.run(c, str(tmp_path / "a"))
    c.top_patches_dir = str(runs[1])
    with pytest.raises(ValueError, match="holds a 'channels' run, not 'top_patches'"):
        atlas_recipe.run(c, str(tmp_path / "a"))
    c.top_patches_dir, c.am_dir = str(runs[0]), str(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="has no manifest.json"):
        atlas_recipe.run(c, str(tmp_path / "a"))
    c.am_dir, c.layers = "", "conv5_3"
    with pytest.raises(ValueError, match=r"layers \['conv5_3'\] are not in the top patches"):
        atlas_recipe.run(c, str(tmp_path / "a"))
    assert not (tmp_path / "a").exists()


def unfinished(path: Path, recipe: str, pieces: int) -> Path:
    """A workdir as a resumable run leaves it when stopped: ``job.json`` and ``pieces`` finished records,
    no ``manifest.json`` (written through the real ``jfv.runtime.jobs.Job``)."""
    from jfv.runtime.jobs import Job

    with Job(path, recipe, {"k": 4}) as job:
        job.create()
        for i in range(pieces):
            job.finish(f"piece_{i}", {"n": i})
    assert (path / "job.json").is_file() and not (path / "manifest.json").exists()
    return path


def test_an_unfinished_run_says_the_same_command_resumes_it(tmp_path):
    from configs import atlas as config

    tp = unfinished(tmp_path / "tp", "top_patches", 2)
    c = config.get_config()
    c.top_patches_dir = str(tp)
    with pytest.raises(atlas.AtlasError) as e:
        atlas_recipe.run(c, str(tmp_path / "site"))
    assert str(e.value) == (
        f"top_patches_dir {tp} is an unfinished top_patches run (2 pieces finished, no manifest.json yet: stopped, "
        f"killed or still running): run the same command again (the same config, on the workdir {tp}) to resume "
        f"and finish it, then run this again")
    assert not (tmp_path / "site").exists()
    one = unfinished(tmp_path / "layer", "layer", 1)
    with pytest.raises(atlas.AtlasError, match=r"^am_dir .* is an unfinished layer run \(1 piece finished,"):
        atlas.read_manifest(one, ("layer", "channels"), "am_dir", "fix")
    # Another recipe's unfinished run, or a folder without job.json: not a run of this kind, as before.
    with pytest.raises(atlas.AtlasError, match=r"has no manifest.json \(not a finished jfv run\): fix$"):
        atlas.read_manifest(one, ("top_patches",), "top_patches_dir", "fix")
    (tmp_path / "empty").mkdir()
    with pytest.raises(atlas.AtlasError, match=r"has no manifest.json \(not a finished jfv run\): fix$"):
        atlas.read_manifest(tmp_path / "empty", ("top_patches",), "top_patches_dir", "fix")
