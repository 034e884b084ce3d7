"""The attribution conformance table: every method of jfv.attribution, on a tiny random classifier
(and deconvnet with explicit switches on VGG16, the plain stack it needs), gives maps of the
documented shape, the same numbers compiled (jit) and eager (``jax.disable_jit``), the same numbers
for a batch as for a loop over its images, and finite values.

Adding a method: add a row to METHODS (name -> function of (model, images) returning its maps and
their expected shape from (n, H, W, C)).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jfv import attribution as A
from tiny_model import tiny_classifier

SIZE = 16
N = 3
CLASS = 2


def _maps(x):
    """The per-image arrays a method returns, as one tuple."""
    return tuple(np.asarray(v) for v in x) if isinstance(x, tuple) else (np.asarray(x),)


def _per_image(result, *fields):
    """The fields of a result NamedTuple that have one entry per image (not the shared positions)."""
    return tuple(getattr(result, f) for f in fields)


# name -> (run(model, images), expected shapes from (n, H, W, C)); every map's first axis is the image
METHODS = {
    "saliency": (lambda m, x: A.saliency(m, x, A.label(CLASS)), lambda n, h, w, c: [(n, h, w)]),
    "gradient_x_input": (lambda m, x: A.gradient_x_input(m, x, A.label(CLASS)), lambda n, h, w, c: [(n, h, w)]),
    "smoothgrad": (lambda m, x: A.smoothgrad(m, x, A.label(CLASS), jax.random.key(0), samples=3),
                   lambda n, h, w, c: [(n, h, w)]),
    "guided_backprop": (lambda m, x: A.guided_backprop(m, x, A.label(CLASS)), lambda n, h, w, c: [(n, h, w, c)]),
    "deconvnet": (lambda m, x: A.deconvnet(m, x, A.channel("relu2", 5)), lambda n, h, w, c: [(n, h, w, c)]),
    "gradient_channel": (lambda m, x: A.gradient(m, x, A.strongest("conv2", 1)), lambda n, h, w, c: [(n, h, w, c)]),
    "cam": (lambda m, x: A.cam(m, x, [CLASS, 0], "relu2"), lambda n, h, w, c: [(n, 2, h // 2, w // 2)]),
    "cam_top_k": (lambda m, x: A.cam_top_k(m, x, 2, "relu2"),
                  lambda n, h, w, c: [(n, 2, h // 2, w // 2), (n, 2), (n, 2)]),
    "grad_cam": (lambda m, x: A.grad_cam(m, x, A.label(CLASS), "relu2"), lambda n, h, w, c: [(n, h // 2, w // 2)]),
    "occlusion": (lambda m, x: _per_image(A.occlusion(m, x, A.label(CLASS, softmax=True), window=8, stride=4,
                                                      batch_size=5), "scores", "baseline", "heatmap"),
                  lambda n, h, w, c: [(n, 3, 3), (n,), (n, h, w)]),
    "deletion_insertion": (lambda m, x: _per_image(A.deletion_insertion(m, x, A.label(CLASS, softmax=True),
                                                                        A.saliency(m, x, A.label(CLASS)), steps=2,
                                                                        baseline=0.5, batch_size=4),
                                                   "deletion", "insertion", "deletion_auc", "insertion_auc"),
                           lambda n, h, w, c: [(n, 3), (n, 3), (n,), (n,)]),
}


@pytest.fixture(scope="module")
def model():
    return tiny_classifier()


@pytest.fixture(scope="module")
def images():
    return np.asarray(jax.random.uniform(jax.random.key(1), (N * SIZE * SIZE * 3,))).reshape(N, SIZE, SIZE, 3)


def _close(a, b, what):
    for x, y in zip(a, b, strict=True):
        scale = max(float(np.abs(y).max()), 1e-6)
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5 * scale, err_msg=what)


@pytest.mark.parametrize("name", list(METHODS))
def test_method_conforms(name, model, images):
    run, shapes = METHODS[name]
    got = _maps(run(model, images))
    # shape and finiteness
    assert [m.shape for m in got] == shapes(*images.shape), name
    assert all(np.isfinite(m).all() for m in got), name
    # not a map of zeros: every method sees the input
    assert np.abs(got[0]).max() > 0, name
    # jit equals eager
    with jax.disable_jit():
        eager = _maps(run(model, jnp.asarray(images)))
    _close(got, eager, f"{name}: jit vs eager")
    # a batch equals a loop over its images
    loop = [_maps(run(model, images[i : i + 1])) for i in range(N)]
    _close(got, [np.concatenate(parts) for parts in zip(*loop)], f"{name}: batch vs loop")


def test_every_public_method_is_in_the_table():
    methods = {"saliency", "gradient_x_input", "smoothgrad", "guided_backprop", "deconvnet", "gradient", "cam",
               "cam_top_k", "grad_cam", "occlusion", "deletion_insertion", "deconvnet_switches", "best_per_block",
               "project_units"}
    covered = set(METHODS) | {"gradient", "deconvnet_switches", "best_per_block", "project_units"}
    assert methods <= covered
    # every callable exported by jfv.attribution that takes (model, images, ...) is one of them
    import inspect

    takes_model = {n for n, f in vars(A).items() if inspect.isfunction(f)
                   and list(inspect.signature(f).parameters)[:2] == ["model", "images"]}
    assert takes_model <= methods, takes_model - methods


def test_deconvnet_with_switches_conforms_and_equals_the_gradient_form(vgg16):
    x = np.asarray(jax.random.uniform(jax.random.key(2), (2 * 32 * 32 * 3,))).reshape(2, 32, 32, 3)
    target = A.strongest("relu1_2", 7)
    got, switches = A.deconvnet_switches(vgg16, x, target)
    assert got.shape == x.shape and np.isfinite(got).all() and np.abs(got).max() > 0
    assert sorted(switches) == [f"pool{i}" for i in range(1, 6)]  # recorded on the whole way up
    assert switches["pool1"].index.shape == (2, 16, 16, 64) and switches["pool5"].index.shape == (2, 1, 1, 512)
    np.testing.assert_allclose(got, A.deconvnet(vgg16, x, target), rtol=1e-4, atol=1e-6 * float(np.abs(got).max()))
    with jax.disable_jit():
        eager, _ = A.deconvnet_switches(vgg16, jnp.asarray(x), target)
    _close([np.asarray(got)], [np.asarray(eager)], "deconvnet_switches: jit vs eager")
    loop = np.concatenate([np.asarray(A.deconvnet_switches(vgg16, x[i : i + 1], target)[0]) for i in range(2)])
    _close([np.asarray(got)], [loop], "deconvnet_switches: batch vs loop")
    units, values = A.project_units(vgg16, x, "relu1_2", jnp.array([3, 7]), jnp.array([[4, 5], [10, 2]]))
    assert units.shape == x.shape and values.shape == (2,) and np.isfinite(units).all()
    acts = np.asarray(vgg16(jnp.asarray(x))["relu1_2"])
    np.testing.assert_allclose(values, [acts[0, 4, 5, 3], acts[1, 10, 2, 7]], rtol=1e-5)
    best = A.best_per_block(vgg16, x, ("relu1_2",))
    proj, channel, value = (np.asarray(v) for v in best["relu1_2"])
    assert proj.shape == x.shape and channel.shape == value.shape == (2,) and np.isfinite(proj).all()
    # the strongest channel's strongest activation, found by brute force
    flat = acts.reshape(2, -1, acts.shape[-1]).max(1)
    np.testing.assert_array_equal(channel, flat.argmax(-1))
    np.testing.assert_allclose(value, flat.max(-1), rtol=1e-5)
