"""The trust measures (jfv.evaluation: two_afc, class_probabilities, processing_path) on hand-built cases,
and the ``score`` recipe end to end on a DIR written by configs/tiny.py, with its bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jfv import evaluation
from jfv.models.base import Model
from tiny_model import tiny_model

REPO = Path(__file__).resolve().parents[2]
SIZE = 32  # LPIPS's AlexNet still has all five stages at 32 px


def smooth_images(key, n: int, size: int = SIZE) -> np.ndarray:
    """``n`` distinct smooth colour images in [0, 1] (random 4x4 fields upsampled): natural-looking enough
    for LPIPS to tell apart."""
    coarse = jax.random.uniform(key, (n, 4, 4, 3))
    return np.asarray(jax.image.resize(coarse, (n, size, size, 3), "bicubic").clip(0, 1))


# -- the two-alternative test -----------------------------------------------------------------------------


def test_tail_indices_match_a_brute_force_sort_with_ties():
    scores = np.array([[3, 1], [5, 1], [3, 0], [1, 2], [5, 2], [0, 1]], np.float32)
    top, bottom = evaluation.tail_indices(scores, 3)
    for c in range(2):
        ids = np.arange(6)
        np.testing.assert_array_equal(top[c], np.lexsort((ids, -scores[:, c]))[:3])  # value desc, id asc
        np.testing.assert_array_equal(bottom[c], np.lexsort((ids, scores[:, c]))[:3])
    np.testing.assert_array_equal(top[0], [1, 4, 0])
    np.testing.assert_array_equal(bottom[1], [2, 0, 1])
    with jax.disable_jit():  # jit equals eager
        eager = evaluation.tail_indices(scores, 3)
        d_top, d_bottom = jnp.array([[0.1, 0.5, 0.3]]), jnp.array([[0.2, 0.5, 0.05]])
        pos, neg = jnp.array([[0, 1, 2, 0]]), jnp.array([[0, 1, 1, 2]])
        outcomes_eager = evaluation.two_afc_outcomes(d_top, d_bottom, pos, neg)
    np.testing.assert_array_equal(eager[0], top)
    np.testing.assert_array_equal(eager[1], bottom)
    # trials: 0.1 < 0.2 correct; 0.5 = 0.5 a tie; 0.3 < 0.5 correct; 0.1 > 0.05 wrong
    np.testing.assert_array_equal(outcomes_eager, [[1.0, 0.5, 1.0, 0.0]])
    np.testing.assert_array_equal(evaluation.two_afc_outcomes(d_top, d_bottom, pos, neg), outcomes_eager)


def test_a_visualisation_identical_to_the_top_image_scores_one():
    # Channel 0's top tail is 5 slightly perturbed copies of image X, its bottom tail 5 other images;
    # the reference is X itself: every trial's top query is nearer, so the accuracy is exactly 1.
    k1, k2 = jax.random.split(jax.random.key(0))
    x = smooth_images(k1, 1)[0]
    others = smooth_images(k2, 10)
    copies = np.clip(x[None] + 0.01 * np.arange(5)[:, None, None, None], 0, 1)
    images = np.concatenate([copies, others]).astype(np.float32)
    scores = np.concatenate([np.linspace(10, 9, 5), np.linspace(0, -1, 10)])[:, None]
    res = evaluation.two_afc(jax.random.key(1), x[None, None], images, scores, trials=50, tail=5)
    assert res.outcomes.shape == (1, 50)
    assert float(res.accuracy[0]) == 1.0 and float(res.stderr[0]) == 0.0


def test_an_uninformative_reference_scores_one_half_within_the_binomial_error():
    # The top and bottom tails hold the same 8 natural images (each image scored once high, once low),
    # so for any reference the probability that a trial is correct is exactly 1/2 (ties count 1/2):
    # random noise as the reference must land within 4 binomial standard errors of 0.5.
    channels, tail, trials = 4, 8, 400
    base = smooth_images(jax.random.key(2), tail)
    images = np.concatenate([base, base]).astype(np.float32)
    rng = np.random.default_rng(0)
    scores = np.stack([np.concatenate([10 + rng.permutation(tail), -10 - rng.permutation(tail)]) for _ in range(channels)], 1)
    noise = np.asarray(jax.random.uniform(jax.random.key(3), (channels, 1, SIZE, SIZE, 3)))
    res = evaluation.two_afc(jax.random.key(4), noise, images, scores.astype(np.float32), trials=trials, tail=tail)
    pooled = float(res.accuracy.mean())
    tolerance = 4 * np.sqrt(0.25 / (channels * trials))  # 4 standard errors of 1600 fair coin flips: 0.05
    assert abs(pooled - 0.5) < tolerance, pooled
    np.testing.assert_allclose(res.stderr, np.sqrt(res.accuracy * (1 - res.accuracy) / trials), rtol=1e-6)


def test_two_afc_equals_a_loop_of_single_lpips_calls():
    # Brute force: each trial decided by LPIPS computed pair by pair, references averaged by hand.
    c, r, n, tail, trials = 2, 2, 8, 3, 6
    k1, k2, k3 = jax.random.split(jax.random.key(5), 3)
    images = smooth_images(k1, n)
    refs = smooth_images(k2, c * r).reshape(c, r, SIZE, SIZE, 3)
    scores = np.asarray(jax.random.normal(k3, (n, c)))
    key = jax.random.key(6)
    res = evaluation.two_afc(key, refs, images, scores, jnp.array([7, 9]), trials=trials, tail=tail)
    pos, neg = evaluation.two_afc_trials(key, jnp.array([7, 9]), trials, tail)
    for ch in range(c):
        order = np.lexsort((np.arange(n), -scores[:, ch]))
        low = np.lexsort((np.arange(n), scores[:, ch]))
        for t in range(trials):
            q_top, q_bot = images[order[int(pos[ch, t])]], images[low[int(neg[ch, t])]]
            d_top = np.mean([float(evaluation.lpips(refs[ch, i][None], q_top[None])[0]) for i in range(r)])
            d_bot = np.mean([float(evaluation.lpips(refs[ch, i][None], q_bot[None])[0]) for i in range(r)])
            expected = 1.0 if d_top < d_bot - 1e-6 else 0.0 if d_top > d_bot + 1e-6 else 0.5
            assert float(res.outcomes[ch, t]) == expected, (ch, t, d_top, d_bot)


def test_trials_depend_on_the_channel_not_on_the_batch():
    key = jax.random.key(7)
    both = evaluation.two_afc_trials(key, jnp.array([3, 5]), 32, 10)
    alone = evaluation.two_afc_trials(key, jnp.array([5]), 32, 10)
    np.testing.assert_array_equal(both[0][1], alone[0][0])
    np.testing.assert_array_equal(both[1][1], alone[1][0])
    again = evaluation.two_afc_trials(key, jnp.array([3, 5]), 32, 10)
    np.testing.assert_array_equal(both[0], again[0])  # same key, same trials
    assert int(both[0].max()) < 10 and int(both[0].min()) >= 0


def test_two_afc_refuses_overlapping_tails_and_shapes_that_do_not_fit():
    images = np.zeros((6, SIZE, SIZE, 3), np.float32)
    with pytest.raises(ValueError, match="tail must be in 1..3"):
        evaluation.two_afc(jax.random.key(0), images[:1, None], images, np.zeros((6, 1)), tail=4)
    with pytest.raises(ValueError, match=r"references must be \(C, R, H, W, 3\) with C = 2"):
        evaluation.two_afc(jax.random.key(0), images[:1, None], images, np.zeros((6, 2)), tail=2)


# -- plausibility -----------------------------------------------------------------------------------------


class MeanColourClassifier(nn.Module):
    """logits = W . (the image's mean colour) + b: a classifier whose softmax is computed by hand below."""

    @nn.compact
    def __call__(self, x):
        return {"logits": nn.Dense(4, name="head")(x.mean(axis=(1, 2)))}


def test_class_probability_equals_a_softmax_computed_by_hand():
    module = MeanColourClassifier()
    params = module.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))["params"]
    params = jax.tree.map(lambda p: p * 5.0, params)  # spread the logits so the softmax is not flat
    model = Model(name="meancolour", module=module, params=params, layers={"logits": 4}, image_size=8)
    images = np.asarray(jax.random.uniform(jax.random.key(1), (5, 8, 8, 3)))
    targets = np.array([0, 1, 2, 3, 1])
    w, b = np.asarray(params["head"]["kernel"], np.float64), np.asarray(params["head"]["bias"], np.float64)
    z = images.astype(np.float64).mean(axis=(1, 2)) @ w + b
    expected = np.exp(z[np.arange(5), targets]) / np.exp(z).sum(axis=1)
    got = evaluation.class_probabilities(model, images, targets)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    with jax.disable_jit():
        np.testing.assert_allclose(evaluation.class_probabilities(model, images, targets), got, rtol=1e-6)
    others = np.where(np.eye(4, dtype=bool)[targets], -np.inf, z)
    np.testing.assert_allclose(evaluation.class_margins(model, images, targets), z[np.arange(5), targets] - others.max(1),
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="out of range"):
        evaluation.class_probabilities(model, images[:1], np.array([4]))


# -- processing path --------------------------------------------------------------------------------------


def test_average_ranks_and_similarities_match_scipy_and_numpy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 12)).astype(np.float32)
    b = rng.normal(size=(4, 12)).astype(np.float32)
    b[0, :4] = 0.0  # ties, as dead ReLU channels give
    np.testing.assert_allclose(evaluation.average_ranks(b), np.stack([stats.rankdata(row) for row in b]))
    rho = evaluation.profile_similarity(a, b, "spearman")
    for i in range(3):
        for j in range(4):
            np.testing.assert_allclose(rho[i, j], stats.spearmanr(a[i], b[j]).statistic, atol=1e-5)
    cos = evaluation.profile_similarity(a, b, "cosine")
    np.testing.assert_allclose(cos, (a @ b.T) / np.outer(np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)), atol=1e-5)
    with jax.disable_jit():
        np.testing.assert_allclose(evaluation.profile_similarity(a, b, "spearman"), rho, atol=1e-6)


def test_processing_path_on_a_tiny_model_against_numpy():
    model = tiny_model()
    layers = ("conv1", "conv2")
    k1, k2, k3 = jax.random.split(jax.random.key(8), 3)
    vis = np.asarray(jax.random.uniform(k1, (2, 16, 16, 3)))
    nat = np.asarray(jax.random.uniform(k2, (6, 16, 16, 3)))
    rand = np.asarray(jax.random.uniform(k3, (3, 16, 16, 3)))
    top_ids = np.array([[0, 1, 2], [3, 4, 5]])
    prof = {name: evaluation.activation_profiles(model, x, layers) for name, x in (("vis", vis), ("nat", nat), ("rand", rand))}
    acts = {name: model.apply(model.params, jnp.asarray(x)) for name, x in (("vis", vis), ("nat", nat), ("rand", rand))}
    for kind in evaluation.SIMILARITIES:
        res = evaluation.processing_path(prof["vis"], {l: prof["nat"][l][top_ids] for l in layers}, prof["rand"], layers, kind)
        for v in range(2):
            for j, layer in enumerate(layers):
                f = {name: np.asarray(a[layer]).mean(axis=(1, 2)) for name, a in acts.items()}

                def sim(x, y):
                    if kind == "spearman":
                        return stats.spearmanr(x, y).statistic
                    return x @ y / (np.linalg.norm(x) * np.linalg.norm(y))

                top = np.mean([sim(f["vis"][v], f["nat"][i]) for i in top_ids[v]])
                random = np.mean([sim(f["vis"][v], f["rand"][m]) for m in range(3)])
                np.testing.assert_allclose(res.top[v, j], top, atol=1e-5)
                np.testing.assert_allclose(res.random[v, j], random, atol=1e-5)
        np.testing.assert_allclose(res.gap, (res.top - res.random).mean(axis=1), atol=1e-6)
    # The natural image compared with itself: similarity 1 at every layer.
    itself = evaluation.processing_path({l: prof["nat"][l][:1] for l in layers}, {l: prof["nat"][l][None, :1] for l in layers},
                                     prof["rand"], layers)
    np.testing.assert_allclose(itself.top, 1.0, atol=1e-6)


# -- the score recipe -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, shared):
    from configs import tiny
    from jfv.recipes.optvis import channels

    path = tmp_path_factory.mktemp("tiny_run")
    channels.run(tiny.get_config(), str(path))
    return path


def listing(path: Path) -> dict[str, int]:
    return {str(p.relative_to(path)): p.stat().st_mtime_ns for p in sorted(path.rglob("*"))}


def test_score_recipe_end_to_end_on_a_tiny_run(tiny_run, tmp_path):
    from configs import score_tiny
    from jfv.recipes.evaluation import score

    before = listing(tiny_run)
    config = score_tiny.get_config()
    config.run_dir = str(tiny_run)
    manifest = score.run(config, str(tmp_path / "scores"))
    assert listing(tiny_run) == before  # nothing written into the scored DIR
    rows = list(csv.DictReader((tmp_path / "scores" / "scores.csv").open()))
    assert [int(r["channel"]) for r in rows] == [3, 5] and {r["layer"] for r in rows} == {"conv3_1"}
    for r in rows:
        p = float(r["two_afc"])
        assert 0.0 <= p <= 1.0 and (p * config.trials) % 0.5 == pytest.approx(0.0, abs=1e-3)  # halves of trials
        assert float(r["two_afc_se"]) == pytest.approx(np.sqrt(p * (1 - p) / config.trials), abs=1e-5)
        assert float(r["path_gap"]) == pytest.approx(float(r["path_top"]) - float(r["path_random"]), abs=1e-5)
    saved = json.loads((tmp_path / "scores" / "manifest.json").read_text())
    assert saved["recipe"] == "score" and saved["natural_images"]["read"] == 40
    assert saved["measures"]["processing_path"]["layers"] == ["conv1_1", "conv2_1", "conv3_1"]
    assert [r["layer"] for r in saved["path_per_layer"]] == ["conv1_1", "conv2_1", "conv3_1"]
    # The deficit averaged over channels equals the per-layer table's (natural - visualisation) averaged over layers.
    table = saved["path_per_layer"]
    assert np.mean([float(r["path_deficit"]) for r in rows]) == pytest.approx(
        np.mean([t["nat_top"] - t["vis_top"] for t in table]), abs=1e-5)
    assert manifest["summary"]["two_afc"]["mean"] == pytest.approx(np.mean([float(r["two_afc"]) for r in rows]), abs=1e-5)
    md = (tmp_path / "scores" / "scores.md").read_text()
    assert "| conv3_1 | 3 |" in md and "## Processing path per layer" in md
    # Same seed, same scores.
    again = score.run(config, str(tmp_path / "again"))
    assert (tmp_path / "again" / "scores.csv").read_text() == (tmp_path / "scores" / "scores.csv").read_text()
    assert again["summary"] == manifest["summary"]


def test_score_recipe_on_class_visualisations(tmp_path, shared):
    # ResNet-20 class visualisations scored with ResNet-20 itself as the "transfer" model: both columns
    # must equal the softmax of the model's logits on the saved PNGs.
    pytest.importorskip("torch")
    from configs import cifar_resnet20_class, score_tiny
    from jfv.models import convert
    from jfv import models
    from jfv.runtime.outputs import load_image
    from jfv.recipes.optvis import channels
    from jfv.recipes.evaluation import score

    checkpoint = next((shared / "weights" / "cifar10-resnet").glob("resnet20-*.th"))
    convert.main(["--model=cifar_resnet20", f"--checkpoint={checkpoint}", f"--out={tmp_path / 'w' / 'cifar_resnet20'}"])
    run = cifar_resnet20_class.get_config()
    run.weights_dir, run.channels, run.steps, run.progress = str(tmp_path / "w"), "2:5", 4, False
    channels.run(run, str(tmp_path / "run"))
    config = score_tiny.get_config()
    config.run_dir, config.weights_dir = str(tmp_path / "run"), str(tmp_path / "w")
    config.path_layers, config.transfer_models = "", "cifar_resnet20"
    manifest = score.run(config, str(tmp_path / "scores"))
    rows = list(csv.DictReader((tmp_path / "scores" / "scores.csv").open()))
    assert "two_afc" not in rows[0] and [int(r["channel"]) for r in rows] == [2, 3, 4]
    model = models.load("cifar_resnet20", weights_dir=tmp_path / "w")
    vis = np.stack([load_image(tmp_path / "run" / f"channels/logits_{c:04d}.png", 32) for c in (2, 3, 4)])
    p = np.asarray(jax.nn.softmax(model(jnp.asarray(vis))["logits"], axis=-1))[np.arange(3), [2, 3, 4]]
    np.testing.assert_allclose([float(r["p_own"]) for r in rows], p, rtol=1e-4)
    np.testing.assert_allclose([float(r["p_cifar_resnet20"]) for r in rows], p, rtol=1e-4)
    z = np.asarray(model(jnp.asarray(vis))["logits"])
    margin = z[np.arange(3), [2, 3, 4]] - np.where(np.eye(10, dtype=bool)[[2, 3, 4]], -np.inf, z).max(1)
    np.testing.assert_allclose([float(r["margin_own"]) for r in rows], margin, rtol=1e-4, atol=1e-4)
    assert [r["margin_cifar_resnet20"] for r in rows] == [r["margin_own"] for r in rows]
    assert manifest["measures"]["processing_path"]["layers"][-1] == "logits"
    config.transfer_models = "vgg16"  # ImageNet features, no CIFAR-10 classes: refused before the pass
    with pytest.raises(score.ConfigError, match="transfer model vgg16 has other classes than cifar_resnet20"):
        score.run(config, str(tmp_path / "bad"))
    assert not (tmp_path / "bad").exists() or not [p for p in (tmp_path / "bad").rglob("*") if p.is_file()]


def test_score_bad_input_is_one_line(tiny_run, tmp_path, monkeypatch):
    from configs import score_tiny
    from jfv.recipes.evaluation import score

    config = score_tiny.get_config()
    # No manifest: through the command line, one line, exit 2, nothing written.
    empty = tmp_path / "empty"
    empty.mkdir()
    res = subprocess.run([sys.executable, "-m", "jfv", "--config=configs/score_tiny.py", f"--config.run_dir={empty}",
                          f"--workdir={tmp_path / 'out'}"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
    lines = [line for line in res.stderr.splitlines() if line.startswith("jfv: ")]
    assert len(lines) == 1 and "has no manifest.json: pass --config.run_dir=DIR" in lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    # The scored DIR as the workdir, with --overwrite: refused before the scored run could be moved aside.
    before = listing(tiny_run)
    res = subprocess.run([sys.executable, "-m", "jfv", "--config=configs/score_tiny.py", f"--config.run_dir={tiny_run}",
                          f"--workdir={tiny_run}", "--overwrite"], cwd=REPO, capture_output=True, text=True, timeout=600)
    lines = [line for line in res.stderr.splitlines() if line.startswith("jfv: ")]
    assert res.returncode == 2 and len(lines) == 1 and "pass a workdir of its own" in lines[0], res.stderr[-2000:]
    assert listing(tiny_run) == before and not list(tiny_run.parent.glob(f"{tiny_run.name}.old-*"))
    # A missing PNG.
    broken = tmp_path / "broken"
    broken.mkdir()
    manifest = json.loads((tiny_run / "manifest.json").read_text())
    (broken / "manifest.json").write_text(json.dumps(manifest))
    config.run_dir = str(broken)
    with pytest.raises(score.RunDirError, match="lacks 2 image"):
        score.run(config, str(tmp_path / "out2"))
    # Another recipe's manifest, and a workdir inside the scored DIR.
    (broken / "manifest.json").write_text(json.dumps({"recipe": "top_patches"}))
    with pytest.raises(score.RunDirError, match="not a finished channels or layer run"):
        score.run(config, str(tmp_path / "out3"))
    config.run_dir = str(tiny_run)
    with pytest.raises(score.ConfigError, match="pass a workdir of its own"):
        score.run(config, str(tiny_run / "scores"))
    assert not (tiny_run / "scores").exists()
    monkeypatch.setattr(score, "available_memory", lambda: 1_000_000)  # 1 MB free: 40 images need ~0.6 MB
    with pytest.raises(score.ConfigError, match="40 natural images at 32 px need about 0.6 MB in memory, more than half the 1.0 MB free"):
        score.run(config, str(tmp_path / "out5"))
    monkeypatch.undo()
    config.run_dir = ""
    with pytest.raises(score.ConfigError, match="run_dir is empty"):
        score.run(config, str(tmp_path / "out4"))


def test_score_recipe_reads_a_layer_run(tmp_path, shared):
    # The layer recipe's manifest names the layer per entry; its channels are scored like a channels run's.
    from configs import layer_tiny, score_tiny
    from jfv.recipes.optvis import layer
    from jfv.recipes.evaluation import score

    run = layer_tiny.get_config()
    run.channels = "1:3"
    layer.run(run, str(tmp_path / "run"))
    config = score_tiny.get_config()
    config.run_dir = str(tmp_path / "run")
    manifest = score.run(config, str(tmp_path / "scores"))
    assert manifest["scored_recipe"] == "layer" and manifest["channels"] == [1, 2] and manifest["layer"] == "conv3_1"
    rows = list(csv.DictReader((tmp_path / "scores" / "scores.csv").open()))
    assert [int(r["channel"]) for r in rows] == [1, 2] and all(0 <= float(r["two_afc"]) <= 1 for r in rows)
