"""Training: one step against PyTorch, augmentation, the schedule, resume = uninterrupted, the recipe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import cifar10_train_tiny
from jfv import training
from jfv.training import checkpoints
from jfv.models import convnet, resnet

REPO = Path(__file__).resolve().parents[2]


def tiny_net(**fields) -> convnet.ConvNet:
    return convnet.ConvNet(widths=(4, 6), whiten=False, train=True, **fields)


def torch_twin(params, batch_norm=True):
    """The same ConvNet (widths (4, 6), no whitening, padding) in plain PyTorch, weights copied."""
    import torch
    from torch import nn

    mean = torch.tensor(convnet.CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(convnet.CIFAR10_STD).view(1, 3, 1, 1)

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = nn.ModuleList([nn.Conv2d(ci, co, 3, padding=1, bias=not batch_norm)
                                        for ci, co in [(3, 4), (4, 4), (4, 6), (6, 6)]])
            self.bns = nn.ModuleList([nn.BatchNorm2d(c, momentum=convnet.BN_MOMENTUM) for c in (4, 4, 6, 6)])
            self.linear = nn.Linear(6, 10, bias=False)

        def forward(self, x):
            x = (x - mean) / std
            for i, conv in enumerate(self.convs):
                x = conv(x)
                if i % 2 == 0:
                    x = nn.functional.max_pool2d(x, 2)
                x = torch.relu(self.bns[i](x) if batch_norm else x)
            return self.linear(x.amax(dim=(2, 3))) / 9

    twin = Twin()
    with torch.no_grad():
        for i, conv in enumerate(twin.convs):
            conv.weight.copy_(torch.tensor(np.asarray(params[f"conv{i + 1}"]["kernel"]).transpose(3, 2, 0, 1)))
            if batch_norm:
                twin.bns[i].weight.copy_(torch.tensor(np.asarray(params[f"bn{i + 1}"]["scale"])))
                twin.bns[i].bias.copy_(torch.tensor(np.asarray(params[f"bn{i + 1}"]["bias"])))
            else:
                conv.bias.copy_(torch.tensor(np.asarray(params[f"conv{i + 1}"]["bias"])))
        twin.linear.weight.copy_(torch.tensor(np.asarray(params["linear"]["kernel"]).T))
    return twin


def torch_grads_by_name(twin, batch_norm=True):
    out = {}
    for i, conv in enumerate(twin.convs):
        out[f"conv{i + 1}/kernel"] = conv.weight.grad.numpy().transpose(2, 3, 1, 0)
        if batch_norm:
            out[f"bn{i + 1}/scale"] = twin.bns[i].weight.grad.numpy()
            out[f"bn{i + 1}/bias"] = twin.bns[i].bias.grad.numpy()
        else:
            out[f"conv{i + 1}/bias"] = conv.bias.grad.numpy()
    out["linear/kernel"] = twin.linear.weight.grad.numpy().T
    return out


def flat(tree) -> dict[str, np.ndarray]:
    return {"/".join(p.key for p in path): np.asarray(v) for path, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


@pytest.mark.parametrize("batch_norm", [True, False])
def test_one_step_equals_pytorch_loss_gradient_update_and_running_stats(batch_norm):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 8).astype(np.int32)
    module = tiny_net(batch_norm=batch_norm)
    params = module.init(jax.random.key(1), jnp.zeros((1, 16, 16, 3)))["params"]
    if batch_norm:  # non-trivial BN parameters
        params = jax.tree_util.tree_map_with_path(
            lambda p, v: v + 0.1 * jnp.arange(v.size, dtype=v.dtype).reshape(v.shape) if p[0].key.startswith("bn") else v,
            params)
    lr, wd, mom, bias_scale, smooth = 0.05, 5e-3, 0.9, 4.0, 0.2
    tx = training.optimiser(lambda s: lr, mom, True, wd, bias_scale)
    state = training.init_state(module, jax.random.key(1), tx, image_size=16, params=params)
    step = training.make_step(module, tx, label_smoothing=smooth, translate=0, flip=False)
    new, (loss, correct) = step(state, jnp.asarray(images), jnp.asarray(labels), jnp.arange(8), jax.random.key(0))

    twin = torch_twin(params, batch_norm)
    x = torch.tensor(images.astype(np.float32) / 255).permute(0, 3, 1, 2)
    y = torch.tensor(labels.astype(np.int64))
    kernels = [p for n, p in twin.named_parameters() if n.endswith("weight") and "bns" not in n]
    others = [p for n, p in twin.named_parameters() if not (n.endswith("weight") and "bns" not in n)]
    opt = torch.optim.SGD([{"params": kernels, "lr": lr, "weight_decay": wd},
                           {"params": others, "lr": lr * bias_scale, "weight_decay": wd / bias_scale}],
                          momentum=mom, nesterov=True)
    logits = twin(x)
    ref_loss = torch.nn.functional.cross_entropy(logits, y, label_smoothing=smooth)
    ref_loss.backward()
    grads = torch_grads_by_name(twin, batch_norm)
    opt.step()

    np.testing.assert_allclose(float(loss), float(ref_loss.detach()), rtol=1e-5)
    assert int(correct) == int((logits.argmax(1) == y).sum())
    # the gradient: recompute it in JAX and compare leaf by leaf
    def loss_fn(p):
        out, _ = module.apply({"params": p, "batch_stats": state.batch_stats}, jnp.asarray(images, jnp.float32) / 255,
                              mutable=["batch_stats"])
        return training.cross_entropy(out["logits"], jnp.asarray(labels), smooth)
    g = flat(jax.grad(loss_fn)(params))
    assert set(g) == set(grads)
    for k in g:
        np.testing.assert_allclose(g[k], grads[k], rtol=2e-4, atol=2e-6, err_msg=k)
    # the update (SGD + Nesterov + coupled decay, biases at bias_scale x lr)
    after = flat(new.params)
    ref_after = flat(jax.tree.map(np.asarray, params))
    for i, conv in enumerate(twin.convs):
        ref_after[f"conv{i + 1}/kernel"] = conv.weight.detach().numpy().transpose(2, 3, 1, 0)
        if batch_norm:
            ref_after[f"bn{i + 1}/scale"] = twin.bns[i].weight.detach().numpy()
            ref_after[f"bn{i + 1}/bias"] = twin.bns[i].bias.detach().numpy()
        else:
            ref_after[f"conv{i + 1}/bias"] = conv.bias.detach().numpy()
    ref_after["linear/kernel"] = twin.linear.weight.detach().numpy().T
    for k in after:
        np.testing.assert_allclose(after[k], ref_after[k], rtol=2e-4, atol=2e-6, err_msg=k)
    if batch_norm:  # running statistics move as torch's (unbiased variance)
        stats = flat(new.batch_stats)
        for i, bn in enumerate(twin.bns):
            np.testing.assert_allclose(stats[f"bn{i + 1}/mean"], bn.running_mean.numpy(), rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(stats[f"bn{i + 1}/var"], bn.running_var.numpy(), rtol=1e-4, atol=1e-6)


def test_frozen_parameters_never_move_and_bn_scales_can_be_frozen():
    module = convnet.ConvNet(widths=(4,), train=True)
    params = convnet.initialise(module, jax.random.key(0), np.random.default_rng(0).integers(0, 256, (16, 8, 8, 3)))
    tx = training.optimiser(lambda s: 0.1, 0.9, True, 1e-3, 8.0, frozen=("whiten",), freeze_bn_scale=True)
    state = training.init_state(module, jax.random.key(0), tx, params=params)
    step = training.make_step(module, tx)
    images = jnp.asarray(np.random.default_rng(1).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8))
    new = state
    for i in range(2):
        new, _ = step(new, images, jnp.arange(8) % 10, jnp.arange(8), jax.random.key(i))
    np.testing.assert_array_equal(new.params["whiten"]["kernel"], params["whiten"]["kernel"])
    np.testing.assert_array_equal(new.params["bn1"]["scale"], params["bn1"]["scale"])
    assert not np.allclose(new.params["bn1"]["bias"], params["bn1"]["bias"])
    assert not np.allclose(new.params["conv1"]["kernel"], params["conv1"]["kernel"])


def test_lookahead_by_hand():
    """Every 5th step the slow copy moves (1 - decay) of the way to the fast weights (params and BN
    statistics) and the fast weights become it; other steps leave both; the schedule is airbench's."""
    fast = ({"w": jnp.asarray([2.0, 4.0])}, {"bn": {"mean": jnp.asarray([1.0])}})
    slow = ({"w": jnp.asarray([0.0, 0.0])}, {"bn": {"mean": jnp.asarray([3.0])}})
    state = training.TrainState(fast[0], fast[1], (), jnp.int32(10), slow)
    new = training.lookahead_update(state, jnp.float32(0.25))
    np.testing.assert_allclose(new.params["w"], [1.5, 3.0])  # 0 + 0.75 * (2 - 0), 0 + 0.75 * 4
    np.testing.assert_allclose(new.batch_stats["bn"]["mean"], [1.5])  # 3 + 0.75 * (1 - 3)
    np.testing.assert_allclose(new.slow[0]["w"], [1.5, 3.0])
    same = training.lookahead_update(state._replace(step=jnp.int32(11)), jnp.float32(0.25))
    np.testing.assert_array_equal(same.params["w"], fast[0]["w"])
    np.testing.assert_array_equal(same.slow[0]["w"], slow[0]["w"])
    done = training.finish_lookahead(state)
    np.testing.assert_array_equal(done.params["w"], slow[0]["w"])
    np.testing.assert_allclose(training.lookahead_decay(50, 100), 0.95**5 / 8)
    assert training.lookahead_update(state._replace(slow=None), 0.5) == state._replace(slow=None)


def test_finishing_lookahead_folds_in_the_steps_since_the_last_update():
    """At the end, steps % 5 fast steps are not dropped: the slow copy moves (1 - decay) towards the
    fast weights first; at a multiple of 5 (nothing pending) finishing only copies, as airbench."""
    fast = ({"w": jnp.asarray([2.0, 4.0])}, {"bn": {"mean": jnp.asarray([1.0])}})
    slow = ({"w": jnp.asarray([0.0, 0.0])}, {"bn": {"mean": jnp.asarray([3.0])}})
    pending = training.TrainState(fast[0], fast[1], (), jnp.int32(768), slow)  # 768 % 5 = 3 steps pending
    done = training.finish_lookahead(pending, jnp.float32(0.25))
    np.testing.assert_allclose(done.params["w"], [1.5, 3.0])
    np.testing.assert_allclose(done.batch_stats["bn"]["mean"], [1.5])
    np.testing.assert_array_equal(training.finish_lookahead(pending).params["w"], [0.0, 0.0])  # airbench drops them
    aligned = training.finish_lookahead(pending._replace(step=jnp.int32(765)), jnp.float32(0.25))
    np.testing.assert_array_equal(aligned.params["w"], [0.0, 0.0])
    np.testing.assert_array_equal(aligned.batch_stats["bn"]["mean"], [3.0])


def test_class_balanced_samples_every_class_in_proportion():
    labels = np.repeat(np.arange(10), [5000] * 9 + [2500])  # class-major, as the archive is read
    idx = training.class_balanced(labels, 5000, seed=3)
    counts = np.bincount(labels[idx], minlength=10)
    assert len(idx) == 5000 and len(set(idx.tolist())) == 5000 and np.all(np.diff(idx) > 0)
    # 5000 x (5000 / 47500) = 526.3 per full class and 263.2 for the last; the 3 largest remainders round up
    np.testing.assert_array_equal(counts, [527] * 3 + [526] * 6 + [263])
    np.testing.assert_array_equal(idx, training.class_balanced(labels, 5000, seed=3))  # same seed, same sample
    assert not np.array_equal(idx, training.class_balanced(labels, 5000, seed=4))
    np.testing.assert_array_equal(training.class_balanced(labels[:100], 5000), np.arange(100))  # fewer: all


def test_the_whitening_layer_is_fitted_on_every_class():
    """The bug this guards against: fitted on the first images of a class-major set (one class), the
    whitened outputs of the whole training set reach variances far above 1; fitted as the recipe
    does, on a class-balanced sample, they stay at or under 1."""
    from jfv.recipes.training import train as recipe, train_plan

    rng = np.random.default_rng(0)
    per_class = 600
    labels = np.repeat(np.arange(10), per_class)
    # each class its own colour cast and contrast, so one class's patch covariance misleads
    base = rng.normal(0, 1, (len(labels), 32, 32, 3))
    cast = rng.uniform(-60, 60, (10, 3))[labels][:, None, None, :]
    contrast = np.linspace(8, 50, 10)[labels][:, None, None, None]
    images = np.clip(128 + cast + contrast * base, 0, 255).astype(np.uint8)
    config = tiny_config(widths="8,16")
    module = recipe.build_module(config)[0]
    params = train_plan.initial_params(config, module, jax.random.key(0), images, labels)
    sample = training.class_balanced(labels, train_plan.WHITEN_SAMPLE, int(config.seed))
    expected = convnet.whitening_kernel(images[sample])
    np.testing.assert_allclose(np.asarray(params["whiten"]["kernel"])[..., :12], expected, rtol=1e-6, atol=1e-6)

    def out_variance(kernel):
        x = (images / 255.0 - np.asarray(convnet.CIFAR10_MEAN)) / np.asarray(convnet.CIFAR10_STD)
        patches = np.stack([x[:, i:31 + i, j:31 + j] for i in range(2) for j in range(2)], axis=3).reshape(-1, 12)
        return (patches @ np.asarray(kernel, np.float64).reshape(12, 12)).var(0)

    assert out_variance(expected).max() <= 1.01
    assert out_variance(convnet.whitening_kernel(images[:train_plan.WHITEN_SAMPLE])).max() > 1.5  # the old fit


def test_the_validation_split_is_class_balanced_fixed_and_disjoint_from_training():
    labels = np.repeat(np.arange(10), 50)
    keep, held = training.holdout(labels, 5)
    assert len(set(keep.tolist()) & set(held.tolist())) == 0 and len(keep) + len(held) == 500
    np.testing.assert_array_equal(np.bincount(labels[held], minlength=10), [5] * 10)
    k2, h2 = training.holdout(labels, 5)
    np.testing.assert_array_equal(held, h2)  # one split for every seed
    assert not np.array_equal(held, np.concatenate([np.arange(c * 50, c * 50 + 5) for c in range(10)]))  # random
    with pytest.raises(ValueError, match="cannot hold out 50 images"):
        training.holdout(labels, 50)


def test_a_run_with_validation_reads_the_test_split_once_at_the_end(shared, tmp_path):
    from jfv.recipes.training import train as recipe, train_data

    config = tiny_config(val_per_class=4, am_steps=0)
    data = train_data.load_data(config)
    digest = lambda x: {im.tobytes() for im in x}  # noqa: E731
    assert len(data.train[0]) == 160 and len(data.val[0]) == 40
    assert not digest(data.train[0]) & digest(data.val[0])  # no validation image is trained on
    np.testing.assert_array_equal(np.bincount(data.val[1], minlength=10), [4] * 10)
    manifest = recipe.run(config, str(tmp_path / "run"))
    first, last = manifest["epochs"]
    assert first["val_accuracy"] is not None and first["test_accuracy"] is None and first["test_loss"] is None
    assert None not in (last["val_accuracy"], last["val_accuracy_tta2"], last["test_accuracy"], last["test_accuracy_tta2"])
    assert manifest["data"]["validation_images"] == 40 and manifest["data"]["train_images"] == 160
    assert "val_per_class" in recipe.settings_of(config) and "val_per_class" not in recipe.settings_of(tiny_config())


def test_step_with_lookahead_is_the_plain_step_then_the_update():
    module = convnet.ConvNet(widths=(4,), train=True)
    params = convnet.initialise(module, jax.random.key(0), np.random.default_rng(0).integers(0, 256, (16, 8, 8, 3)))
    tx = training.optimiser(lambda s: 0.1, 0.9, True, 1e-3, 8.0, frozen=("whiten",), freeze_bn_scale=True)
    images = jnp.asarray(np.random.default_rng(1).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8))
    labels = jnp.arange(8) % 10
    ahead = training.init_state(module, jax.random.key(0), tx, params=params, lookahead=True)
    alone = ahead._replace(slow=None)
    step_la, step = training.make_step(module, tx, total_steps=10), training.make_step(module, tx)
    batch = (images, labels, jnp.arange(8))
    for i in range(4):  # steps 1-4: no update, the same run
        ahead, _ = step_la(ahead, *batch, jax.random.key(i))
        alone, _ = step(alone, *batch, jax.random.key(i))
        for a, b in zip(jax.tree.leaves((ahead.params, ahead.batch_stats)), jax.tree.leaves((alone.params, alone.batch_stats))):
            np.testing.assert_array_equal(a, b)
    # step 5: the plain step, then the slow weights (still the initial ones) move 1 - decay(5/10) of the way
    want = training.lookahead_update(step(alone, *batch, jax.random.key(4))[0]._replace(slow=ahead.slow),
                                  training.lookahead_decay(5, 10))
    ahead, _ = step_la(ahead, *batch, jax.random.key(4))
    for a, b in zip(jax.tree.leaves(ahead), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert not np.allclose(ahead.params["conv1"]["kernel"], step(alone, *batch, jax.random.key(4))[0].params["conv1"]["kernel"])
    with pytest.raises(ValueError, match="total_steps"):
        training.make_step(module, tx)(ahead, *batch, jax.random.key(0))


def test_augment_keeps_shapes_and_each_output_is_a_shifted_or_mirrored_input():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    out = np.asarray(training.augment(jax.random.key(3), jnp.asarray(images), translate=2, flip=True))
    assert out.shape == images.shape and out.dtype == np.float32
    x = images.astype(np.float32) / 255
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
    flips = 0
    for n in range(6):
        matches = [(dy, dx, m) for dy in range(5) for dx in range(5) for m in (False, True)
                   if np.allclose(out[n], (lambda c: c[:, ::-1] if m else c)(padded[n, dy:dy + 8, dx:dx + 8]), atol=1e-6)]
        assert matches, n
        flips += matches[0][2]
    assert 0 < flips < 6  # some mirrored, some not (this key)
    same = np.asarray(training.augment(jax.random.key(3), jnp.asarray(images), translate=0, flip=False))
    np.testing.assert_allclose(same, x, atol=1e-6)


def test_small_crops_are_windows_of_the_padded_image_over_every_offset():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 8, 8, 3), dtype=np.uint8)
    out = np.asarray(training.augment(jax.random.key(5), jnp.asarray(images), translate=1, flip=False, size=5))
    assert out.shape == (64, 5, 5, 3)
    padded = np.pad(images.astype(np.float32) / 255, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    seen = set()
    for n in range(64):  # 10 - 5 + 1 = 6 offsets each way
        matches = [(dy, dx) for dy in range(6) for dx in range(6)
                   if np.allclose(out[n], padded[n, dy:dy + 5, dx:dx + 5], atol=1e-6)]
        assert matches, n
        seen.update(matches)
    assert {d for d, _ in seen} == set(range(6)) and {d for _, d in seen} == set(range(6))
    # at the images' own size (or size=None) it is the plain translation, draw for draw
    for size in (None, 8):
        np.testing.assert_array_equal(training.augment(jax.random.key(5), jnp.asarray(images), 1, True, size=size),
                                      training.augment(jax.random.key(5), jnp.asarray(images), 1, True))


def test_alternating_flip_mirrors_each_image_in_every_other_epoch():
    first, second, third = (training.epoch_mirror(0, e, 1000) for e in (1, 2, 3))
    np.testing.assert_array_equal(second, ~first)  # two consecutive epochs: each image both ways
    np.testing.assert_array_equal(third, first)
    assert 450 < first.sum() < 550  # a random half to start
    np.testing.assert_array_equal(first, training.epoch_mirror(0, 1, 1000))  # fixed by the seed
    assert not np.array_equal(first, training.epoch_mirror(1, 1, 1000))
    # augment mirrors exactly the images it is told to, whatever the key would have drawn
    images = np.random.default_rng(0).integers(0, 256, (6, 5, 7, 3), dtype=np.uint8)
    which = np.array([True, False, False, True, True, False])
    for key in range(3):
        out = np.asarray(training.augment(jax.random.key(key), jnp.asarray(images), translate=0, flip=True,
                                       mirror=jnp.asarray(which)))
        want = np.where(which[:, None, None, None], images[:, :, ::-1], images).astype(np.float32) / 255
        np.testing.assert_allclose(out, want, atol=1e-7)


def test_a_step_told_which_images_to_mirror_trains_on_those_mirrored():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 8).astype(np.int32)
    which = np.array([1, 0, 1, 1, 0, 0, 1, 0], bool)
    module = tiny_net()
    tx = training.optimiser(lambda s: 0.1, 0.9, True, 5e-4, 4.0)
    state = training.init_state(module, jax.random.key(1), tx, image_size=16)
    mirrored = np.where(which[:, None, None, None], images[:, :, ::-1], images)
    idx = jnp.asarray([3, 0, 7, 1, 5, 2, 6, 4])
    told, (loss, _) = training.make_step(module, tx, translate=0, flip=True)(
        state, jnp.asarray(images), jnp.asarray(labels), idx, jax.random.key(0), jnp.asarray(which[np.asarray(idx)]))
    plain, (ref_loss, _) = training.make_step(module, tx, translate=0, flip=False)(
        state, jnp.asarray(mirrored), jnp.asarray(labels), idx, jax.random.key(0))
    assert float(loss) == pytest.approx(float(ref_loss), rel=1e-6)
    for a, b in zip(jax.tree.leaves(told.params), jax.tree.leaves(plain.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_schedules_match_their_definitions():
    tri = training.lr_schedule("triangular", 2.0, 100, warmup=0.2, start=0.2)
    np.testing.assert_allclose([float(tri(s)) for s in (0, 10, 20, 60, 100)], [0.4, 1.2, 2.0, 1.0, 0.0], rtol=1e-6)
    cos = training.lr_schedule("cosine", 1.0, 100, warmup=0.1)
    np.testing.assert_allclose(float(cos(10)), 1.0, rtol=1e-6)
    np.testing.assert_allclose(float(cos(55)), 0.5, atol=1e-6)
    assert float(training.lr_schedule("constant", 0.3, 10)(7)) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="valid: triangular"):
        training.lr_schedule("step", 1.0, 10)


def test_epoch_order_is_a_fixed_permutation_per_seed_and_epoch():
    a = training.epoch_order(0, 3, 103, 10)
    assert a.shape == (10, 10) and len(set(a.ravel())) == 100
    np.testing.assert_array_equal(a, training.epoch_order(0, 3, 103, 10))
    assert not np.array_equal(a, training.epoch_order(0, 4, 103, 10))
    assert not np.array_equal(a, training.epoch_order(1, 3, 103, 10))


def test_a_few_steps_on_a_small_set_lower_the_loss():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 6).astype(np.int32)
    images = np.clip(rng.normal(60 + 15 * labels[:, None, None, None], 20, (60, 16, 16, 3)), 0, 255).astype(np.uint8)
    module = convnet.ConvNet(widths=(8, 16), train=True)
    params = convnet.initialise(module, jax.random.key(0), images)
    tx = training.optimiser(lambda s: 1.0, 0.9, True, 0.0, 4.0, frozen=("whiten",))
    state = training.init_state(module, jax.random.key(0), tx, params=params)
    step = training.make_step(module, tx)
    x, y = jnp.asarray(images), jnp.asarray(labels)
    losses = []
    for i in range(20):
        state, (loss, _) = step(state, x, y, jnp.asarray(training.epoch_order(0, i, 60, 30)[0]), training.batch_key(0, i, 0))
        losses.append(float(loss))
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses


def test_evaluate_counts_every_image_once_with_a_padded_last_batch():
    module = convnet.ConvNet(widths=(4,), whiten=False)
    params = module.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
    images = np.random.default_rng(0).integers(0, 256, (23, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(23) % 10
    ev = training.make_eval(lambda p, x: module.apply({"params": p}, x))
    got = training.evaluate(ev, params, images, labels.astype(np.int32), batch_size=10)
    logits = np.asarray(module.apply({"params": params}, jnp.asarray(images, jnp.float32) / 255)["logits"])
    assert got.accuracy == pytest.approx(np.mean(logits.argmax(1) == labels))
    np.testing.assert_array_equal(got.predictions, logits.argmax(1))
    tta = training.evaluate(training.make_eval(lambda p, x: module.apply({"params": p}, x), tta=True), params, images,
                         labels.astype(np.int32), batch_size=10)
    mirrored = np.asarray(module.apply({"params": params}, jnp.asarray(images[:, :, ::-1], jnp.float32) / 255)["logits"])
    np.testing.assert_array_equal(tta.predictions, (logits + mirrored).argmax(1))


def test_tta_level_2_is_airbench_mirror_and_one_pixel_shifts():
    """Level 2 by hand in numpy: half the mirror mean, plus half the mirror means of the images
    shifted by one pixel up-left and down-right with reflect padding."""
    module = convnet.ConvNet(widths=(4,), whiten=False)
    params = module.init(jax.random.key(1), jnp.zeros((1, 32, 32, 3)))["params"]
    x = np.random.default_rng(1).random((3, 32, 32, 3)).astype(np.float32)
    logits = lambda v: np.asarray(module.apply({"params": params}, jnp.asarray(v))["logits"])  # noqa: E731
    mirror = lambda v: 0.5 * (logits(v) + logits(v[:, :, ::-1]))  # noqa: E731
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    want = 0.5 * mirror(x) + 0.25 * (mirror(padded[:, :32, :32]) + mirror(padded[:, 2:, 2:]))
    apply = lambda p, v: module.apply({"params": p}, v)  # noqa: E731
    got = training.tta_logits(apply, params, jnp.asarray(x), 2)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(training.tta_logits(apply, params, jnp.asarray(x), 1), mirror(x), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="tta must be one of"):
        training.make_eval(apply, tta=3)


# -- the model ------------------------------------------------------------------------------------


def test_whitening_layer_decorrelates_patches():
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, (64, 17, 17, 3))
    images = (0.5 + 0.15 * (base[:, :16, :16] + base[:, 1:, 1:] + base[:, :16, 1:])).clip(0, 1)  # correlated pixels
    k = convnet.whitening_kernel(images, eps=0.0)
    x = (images - np.asarray(convnet.CIFAR10_MEAN)) / np.asarray(convnet.CIFAR10_STD)
    out = jax.lax.conv_general_dilated(jnp.asarray(x, jnp.float32), jnp.asarray(k), (1, 1), "VALID",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
    flat_out = np.asarray(out).reshape(-1, 12).astype(np.float64)
    cov = np.cov(flat_out, rowvar=False, bias=True)
    np.testing.assert_allclose(cov, np.eye(12), atol=2e-3)


def test_rgb_filters_compose_whitening_and_the_first_conv_exactly():
    module = convnet.ConvNet(widths=(5,), train=False)
    rng = np.random.default_rng(0)
    params = convnet.initialise(module.clone(train=True), jax.random.key(0), rng.integers(0, 256, (8, 32, 32, 3)))
    x = jnp.asarray(rng.normal(size=(2, 12, 12, 3)), jnp.float32)
    conv = lambda a, k, pad: jax.lax.conv_general_dilated(a, jnp.asarray(k), (1, 1), pad,  # noqa: E731
                                                          dimension_numbers=("NHWC", "HWIO", "NHWC"))
    two_step = conv(conv(x, params["whiten"]["kernel"], "VALID"), params["conv1"]["kernel"], "VALID")
    composed = conv(x, convnet.rgb_filters(params), "VALID")
    assert convnet.rgb_filters(params).shape == (4, 4, 3, 5)
    np.testing.assert_allclose(np.asarray(composed), np.asarray(two_step), rtol=1e-4, atol=1e-4)


def test_split_whitening_is_relu_of_both_signs_and_rgb_filters_give_its_linear_part():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 32, 32, 3))
    module = convnet.ConvNet(widths=(5,), whiten_split=True, train=True)
    params = convnet.initialise(module, jax.random.key(0), images)
    v = convnet.whitening_kernel(images)
    np.testing.assert_array_equal(params["whiten"]["kernel"], np.concatenate([v, -v], -1))
    np.testing.assert_array_equal(params["whiten"]["bias"], np.zeros(24))
    conv = lambda a, k, pad: jax.lax.conv_general_dilated(a, jnp.asarray(k, jnp.float32), (1, 1), pad,  # noqa: E731
                                                          dimension_numbers=("NHWC", "HWIO", "NHWC"))
    x = jnp.asarray(rng.uniform(size=(2, 12, 12, 3)), jnp.float32)
    z = conv((x - jnp.asarray(convnet.CIFAR10_MEAN)) / jnp.asarray(convnet.CIFAR10_STD), v, "VALID")
    stats = {f"bn{i}": {"mean": jnp.zeros(5), "var": jnp.ones(5)} for i in (1, 2)}
    out, _ = module.apply({"params": params, "batch_stats": stats}, x, mutable=["batch_stats"])
    np.testing.assert_allclose(out["whiten"], jnp.concatenate([jax.nn.relu(z), jax.nn.relu(-z)], -1), atol=1e-5)
    # conv1 weighs the two signs of each whitened channel: its odd part acts linearly on z, since
    # relu(z) - relu(-z) = z; rgb_filters is that part composed with the whitening, exactly
    k1 = np.asarray(params["conv1"]["kernel"])
    odd = np.concatenate([k1[:, :, :12] - k1[:, :, 12:], k1[:, :, 12:] - k1[:, :, :12]], 2) / 2
    through = conv(jnp.concatenate([jax.nn.relu(z), jax.nn.relu(-z)], -1), odd, "VALID")
    rgb = convnet.rgb_filters(params)
    assert rgb.shape == (4, 4, 3, 5)
    x_norm = (x - jnp.asarray(convnet.CIFAR10_MEAN)) / jnp.asarray(convnet.CIFAR10_STD)
    np.testing.assert_allclose(conv(x_norm, rgb, "VALID"), through, rtol=1e-4, atol=1e-4)


def test_split_whitening_trains_its_bias_at_the_kernels_rate_and_keeps_its_kernel():
    module = convnet.ConvNet(widths=(4,), whiten_split=True, train=True)
    params = convnet.initialise(module, jax.random.key(0), np.random.default_rng(0).integers(0, 256, (16, 8, 8, 3)))
    groups = training.param_groups(params, frozen=("whiten/kernel",), freeze_bn_scale=True, plain=("whiten/bias",))
    assert (groups["whiten"]["kernel"], groups["whiten"]["bias"], groups["conv1"]["kernel"], groups["bn1"]["bias"],
            groups["bn1"]["scale"]) == ("frozen", "kernel", "kernel", "bias", "frozen")
    tx = training.optimiser(lambda s: 0.1, 0.0, False, 0.0, 8.0, frozen=("whiten/kernel",), plain=("whiten/bias",))
    state = training.init_state(module, jax.random.key(0), tx, params=params)
    images = jnp.asarray(np.random.default_rng(1).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8))
    labels, idx = jnp.arange(8) % 10, jnp.arange(8)
    new, _ = training.make_step(module, tx, translate=0, flip=False)(state, images, labels, idx, jax.random.key(0))
    np.testing.assert_array_equal(new.params["whiten"]["kernel"], params["whiten"]["kernel"])

    def loss(p):
        out, _ = module.apply({"params": p, "batch_stats": state.batch_stats}, images.astype(jnp.float32) / 255,
                              mutable=["batch_stats"])
        return training.cross_entropy(out["logits"], labels)

    g = jax.grad(loss)(params)  # plain SGD: the bias moves by lr x its gradient, not 8 x that
    np.testing.assert_allclose(new.params["whiten"]["bias"], params["whiten"]["bias"] - 0.1 * g["whiten"]["bias"],
                               rtol=1e-4, atol=1e-7)
    assert np.abs(g["whiten"]["bias"]).max() > 0


def test_a_held_parameter_keeps_its_value_and_costs_no_gradient():
    module = convnet.ConvNet(widths=(4,), whiten_split=True, train=True)
    params = convnet.initialise(module, jax.random.key(0), np.random.default_rng(0).integers(0, 256, (16, 8, 8, 3)))
    params["whiten"]["bias"] = jnp.full((24,), 0.1)
    tx = training.optimiser(lambda s: 0.1, 0.85, True, 1e-3, 8.0, frozen=("whiten/kernel",), plain=("whiten/bias",))
    state = training.init_state(module, jax.random.key(0), tx, params=params)
    args = (jnp.asarray(np.random.default_rng(1).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)),
            jnp.arange(8) % 10, jnp.arange(8), jax.random.key(3))
    plain, held = training.make_step(module, tx), training.make_step(module, tx, hold=("whiten/bias",))
    a, _ = plain(state, *args)
    b, _ = held(state, *args)
    fa, fb = flat(a.params), flat(b.params)
    assert not np.allclose(fa["whiten/bias"], fb["whiten/bias"])
    for k in fa:  # the other parameters see the same gradients
        if k != "whiten/bias":
            np.testing.assert_allclose(fb[k], fa[k], rtol=1e-5, atol=1e-6, err_msg=k)
    b, _ = held(plain(a, *args)[0], *args)  # held after moving: momentum and decay move it no further
    np.testing.assert_array_equal(flat(b.params)["whiten/bias"], flat(plain(a, *args)[0].params)["whiten/bias"])
    # no gradient flows below the first conv any more: one convolution fewer in the compiled step
    count = lambda f: f.lower(state, *args).compile().as_text().count("convolution(")  # noqa: E731
    assert count(held) == count(plain) - 1


def test_dirac_init_passes_the_input_channels_through():
    module = convnet.ConvNet(widths=(4, 8), whiten=False, train=True)
    params = convnet.initialise(module, jax.random.key(0))
    k = np.asarray(params["conv3"]["kernel"])  # 4 -> 8
    ident = np.zeros((3, 3, 4, 4))
    ident[1, 1] = np.eye(4)
    np.testing.assert_array_equal(k[:, :, :, :4], ident)
    assert np.abs(k[:, :, :, 4:]).max() > 0


def test_padding_off_is_refused_where_no_pixels_would_remain():
    convnet.check_geometry(convnet.ConvNet(widths=(8, 16), padding=False))  # fits at 32 px
    assert convnet.spatial_sizes(convnet.ConvNet(widths=(8, 16), padding=False)) == [14, 12, 5, 3]
    with pytest.raises(convnet.GeometryError, match="use at most 2 block"):
        convnet.check_geometry(convnet.ConvNet(widths=(8, 16, 32), padding=False))


def test_merge_batch_stats_gives_the_inference_params():
    module = tiny_net()
    v = module.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
    stats = jax.tree.map(lambda a: a + 0.5, v["batch_stats"])
    merged = resnet.merge_batch_stats(v["params"], stats)
    eval_params = module.clone(train=False).init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))["params"]
    assert jax.tree.structure(merged) == jax.tree.structure(eval_params)
    np.testing.assert_array_equal(merged["bn2"]["mean"], stats["bn2"]["mean"])


# -- the recipe -----------------------------------------------------------------------------------


def tiny_config(**overrides) -> ml_collections.ConfigDict:
    c = cifar10_train_tiny.get_config()
    for k, v in overrides.items():
        c[k] = v
    return c


def final_params(workdir: Path, arch: str = "cifar_convnet"):
    from jfv.models.weights import restore

    params, _ = restore(workdir / arch, "", model=arch)
    return flat(params)


@pytest.fixture(scope="module")
def trained(shared, tmp_path_factory):
    from jfv.recipes.training import train as recipe

    workdir = tmp_path_factory.mktemp("train") / "run"
    manifest = recipe.run(tiny_config(), str(workdir))
    return workdir, manifest


def test_the_tiny_recipe_writes_every_output_and_a_loadable_model(trained):
    from jfv import models

    workdir, manifest = trained
    for name in ("metrics.csv", "metrics.png", "filters_over_time.png", "am_over_time.png", "index.html",
                 "manifest.json", "cifar_convnet/manifest.json", "evolution/filters_0000.png", "evolution/am_0002.png"):
        assert (workdir / name).exists(), name
    rows = (workdir / "metrics.csv").read_text().splitlines()
    # one protocol a column: plain evaluation every epoch, the test-time augmented one at the last only
    assert rows[0] == ("epoch,learning_rate,weights,train_loss,train_accuracy,test_loss,test_accuracy,"
                       "test_accuracy_tta2,seconds,images_per_second") and len(rows) == 3
    first, last = (dict(zip(rows[0].split(","), r.split(","))) for r in rows[1:])
    assert (first["weights"], last["weights"]) == ("fast", "lookahead")
    assert first["test_accuracy_tta2"] == "" and last["test_accuracy_tta2"] != "" and first["test_accuracy"] != ""
    assert manifest["complete"] and len(manifest["epochs"]) == 2
    model = models.load("cifar_convnet", weights_dir=workdir)
    assert model.layers["conv4"] == 16 and model.labels[0] == "airplane"
    # the loaded model scores what the run recorded on the same test images (the last epoch: the config's TTA)
    from jfv.analysis import datasets

    data = datasets.cifar10_subsets(datasets.shared_dir() / datasets.CIFAR10_ARCHIVE, {"test": 5})
    x, y = data["test"]
    for tta, column in ((tiny_config().tta, "test_accuracy_tta2"), (0, "test_accuracy")):
        ev = training.make_eval(model.apply, tta=tta)
        assert training.evaluate(ev, model.params, x, y).accuracy == pytest.approx(manifest["epochs"][-1][column])
    assert manifest["model"]["test_accuracy"] == manifest["epochs"][-1]["test_accuracy_tta2"]
    # the montage has one row per epoch (initialisation + 2)
    from PIL import Image

    strip = np.asarray(Image.open(workdir / "evolution/filters_0000.png"))
    sheet = np.asarray(Image.open(workdir / "filters_over_time.png"))
    assert sheet.shape[0] == 3 * (strip.shape[0] + 2) and sheet.shape[1] == strip.shape[1]


def test_resume_after_a_stop_mid_epoch_and_after_a_lost_epoch_equals_the_uninterrupted_run(trained, tmp_path,
                                                                                          monkeypatch):
    from jfv.runtime import jobs
    from jfv.recipes.training import train as recipe

    reference = final_params(trained[0])
    workdir = tmp_path / "run"

    class StopAfter(jobs.StopFlag):  # a SIGTERM that lands before step 6 of 8 (epoch 2, step 2)
        checks = 0

        @property
        def stop(self):
            StopAfter.checks += 1
            if StopAfter.checks > 6:
                self.signum = 15
            return self.signum is not None

    monkeypatch.setattr(recipe, "StopFlag", StopAfter)
    with pytest.raises(jobs.Interrupted, match="checkpointed epoch 2 at step 2"):
        recipe.run(tiny_config(), str(workdir))
    assert [p.name for _, _, p in checkpoints.checkpoints(workdir)] == ["ckpt_0001_00004", "ckpt_0002_00002"]
    monkeypatch.undo()
    recipe.run(tiny_config(), str(workdir))
    got = final_params(workdir)
    assert set(got) == set(reference)
    for k in got:
        np.testing.assert_array_equal(got[k], reference[k], err_msg=k)
    assert len((workdir / "metrics.csv").read_text().splitlines()) == 3

    # a kill after epoch 1's checkpoint: epoch 2's checkpoint, record and the model are lost
    lost = tmp_path / "lost"
    recipe.run(tiny_config(), str(lost))
    import shutil

    shutil.rmtree(lost / "checkpoints" / "ckpt_0002_00004")
    shutil.rmtree(lost / "cifar_convnet")
    (lost / "records" / "epoch_0002.json").unlink()
    recipe.run(tiny_config(), str(lost))
    again = final_params(lost)
    for k in again:
        np.testing.assert_array_equal(again[k], reference[k], err_msg=k)


def test_resume_with_other_settings_is_refused_naming_the_keys(trained):
    from jfv.runtime.jobs import ResumeError
    from jfv.recipes.training import train as recipe

    with pytest.raises(ResumeError, match=r"learning_rate \(0.2 -> 0.3\)"):
        recipe.run(tiny_config(learning_rate=0.3), str(trained[0]))


def cli(*args):
    return subprocess.run([sys.executable, "-m", "jfv", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def one_line(res, fragment, status=2):
    assert res.returncode == status, res.stderr[-2000:]
    assert "Traceback" not in res.stderr, res.stderr[-2000:]
    lines = [line for line in res.stderr.splitlines() if line.startswith("jfv: ")]
    assert len(lines) == 1 and fragment in lines[0], res.stderr[-2000:]


def test_settings_leave_out_the_options_that_are_off():
    from jfv.recipes.training import train as recipe

    off = {"whiten_split", "whiten_bias_epochs", "small_epochs", "small_size"}
    assert not off & set(recipe.settings_of(tiny_config(small_epochs=0, whiten_split=False)))
    assert not off & set(recipe.settings_of(tiny_config(small_epochs=0, arch="cifar_resnet20")))  # no whitening there
    settings = recipe.settings_of(tiny_config(small_epochs=1, whiten_split=True))
    assert (settings["small_epochs"], settings["small_size"], settings["whiten_split"], settings["whiten_bias_epochs"]) \
        == (1, 24, True, 1)


@pytest.mark.parametrize("override, fragment", [
    ("--config.batch_size=500", "batch_size=500 is larger than the 200 training images"),
    ("--config.arch=vgg99", "unknown arch 'vgg99'; valid: convnet, cifar_resnet20"),
    ("--config.widths=8,16,32,64", "use at most 2 block"),
    ("--config.tta=3", "tta must be 0 (none), 1 (mirror) or 2"),
    ("--config.flip=sometimes", "unknown flip 'sometimes'; valid: none, random, alternate"),
    ("--config.whiten_split=True --config.whiten=False", "whiten_split=True needs the whitening layer"),
    ("--config.small_epochs=2", "small_epochs must be an integer in 0..1"),
    ("--config.small_size=4", "small_size must be an integer in 8..32"),
    ("--config.val_per_class=20", "val_per_class must be an integer in 0..19"),
    ("--config.val_per_class=16", "batch_size=50 is larger than the 40 training images"),
])
def test_bad_settings_are_one_line_and_status_2(tmp_path, override, fragment):
    extra = ["--config.padding=False"] if "widths" in override else []
    one_line(cli("--config=configs/cifar10_train_tiny.py", f"--workdir={tmp_path / 'w'}", *override.split(), *extra),
             fragment)
    assert not (tmp_path / "w" / "job.json").exists()


def test_a_missing_archive_says_where_it_was_looked_for(tmp_path):
    (tmp_path / "shared").mkdir()
    one_line(cli("--config=configs/cifar10_train_tiny.py", f"--workdir={tmp_path / 'w'}",
                 f"--config.shared_dir={tmp_path / 'shared'}"), "CIFAR-10 archive not found at")


def test_a_corrupt_checkpoint_on_resume_is_named_and_the_earlier_ones_kept(shared, tmp_path):
    workdir = tmp_path / "w"
    args = ["--config=configs/cifar10_train_tiny.py", f"--workdir={workdir}", "--config.epochs=3"]
    res = cli(*args)
    assert res.returncode == 0, res.stderr[-2000:]
    import shutil

    shutil.rmtree(workdir / "cifar_convnet")
    (workdir / "records" / "epoch_0003.json").unlink()
    newest = sorted((workdir / "checkpoints").iterdir())[-1]
    for f in (newest / "params").rglob("*"):
        if f.is_file() and f.stat().st_size > 100:
            f.write_bytes(f.read_bytes()[:50])
    res = cli(*args)
    one_line(res, f"training checkpoint {newest} cannot be read")
    assert f"delete {newest} to resume from ckpt_0002_00004" in res.stderr  # the one before it, named
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["ckpt_0002_00004", "ckpt_0003_00004"]
    res = cli(*args)  # still refused, nothing deleted
    assert res.returncode == 2 and (workdir / "checkpoints" / "ckpt_0002_00004").exists()


# -- the study and the sensitivity recipes ---------------------------------------------------------


def test_top_maps_ranks_channels_by_their_peak_and_scales_each_map():
    from jfv.recipes.training.train_study import top_maps

    acts = np.zeros((1, 2, 2, 3), np.float32)
    acts[0, 0, 0] = [1.0, 5.0, 0.0]
    acts[0, 1, 1] = [2.0, 0.0, -1.0]
    order, maps = top_maps(acts, 3)
    np.testing.assert_array_equal(order, [[1, 0, 2]])
    np.testing.assert_allclose(maps[0, 0], [[1, 0], [0, 0]])
    np.testing.assert_allclose(maps[0, 1], [[0.5, 0], [0, 1]])
    np.testing.assert_allclose(maps[0, 2], 0.0)  # never positive: all zero


def test_the_bn_padding_study_trains_four_variants_and_writes_its_table(shared, tmp_path):
    from configs import cifar10_bn_padding_tiny
    from jfv.recipes.training import train_study

    c = cifar10_bn_padding_tiny.get_config()
    manifest = train_study.run(c, str(tmp_path / "study"))
    names = [v["variant"] for v in manifest["variants"]]
    assert names == ["bn1_pad1", "bn1_pad0", "bn0_pad1", "bn0_pad0"]
    table = (tmp_path / "study" / "table.md").read_text().splitlines()
    assert len(table) == 6 and all(0 <= float(v["test_accuracy"]) <= 1 for v in manifest["variants"])
    for f in ("relu1.png", "relu4.png", "results.csv", "index.html", "bn0_pad0/cifar_convnet/manifest.json"):
        assert (tmp_path / "study" / f).exists(), f
    from jfv import models

    nopad = models.load("cifar_convnet", weights_dir=tmp_path / "study" / "bn1_pad0")
    assert nopad.module.padding is False and nopad.output_shapes(32)["relu4"][1:3] == (3, 3)
    again = train_study.run(c, str(tmp_path / "study"))  # every variant resumes as finished
    assert [v["test_accuracy"] for v in again["variants"]] == [v["test_accuracy"] for v in manifest["variants"]]


def test_sensitivity_maps_are_the_true_class_probability_under_the_square(trained, tmp_path):
    from configs import cifar10_sensitivity
    from jfv import models
    from jfv.recipes.attribution import sensitivity

    c = cifar10_sensitivity.get_config()
    c.weights_dir = str(trained[0])
    c.window, c.stride = 8, 8
    manifest = sensitivity.run(c, str(tmp_path / "s"))
    assert manifest["images"] == 10
    maps = np.load(tmp_path / "s" / "maps.npz")
    assert maps["maps"].shape == (10, 4, 4) and ((0 <= maps["maps"]) & (maps["maps"] <= 1)).all()
    # one position by hand: image 3 with the square's corner at (8, 16)
    from jfv.analysis import datasets

    x, y = datasets.cifar10_subsets(datasets.shared_dir() / datasets.CIFAR10_ARCHIVE, {"test": 1})["test"]
    model = models.load("cifar_convnet", weights_dir=trained[0])
    img = x[3].astype(np.float32) / 255
    img[8:16, 16:24] = 0.5
    p = np.asarray(jax.nn.softmax(model(jnp.asarray(img[None]))["logits"]))[0, y[3]]
    assert maps["maps"][3, 1, 2] == pytest.approx(float(p), abs=1e-5)
    assert (tmp_path / "s" / "sensitivity.png").exists() and (tmp_path / "s" / "results.csv").exists()


DATA_PARALLEL = r'''
import json, sys
import jax, jax.numpy as jnp, numpy as np
from jfv import training
from jfv.models import convnet
from jfv.recipes.common import make_mesh

mesh = make_mesh(4, "batch")
module = convnet.ConvNet(widths=(8, 16), batch_norm=True, padding=True, whiten=False, train=True)
rng = np.random.default_rng(0)
images = rng.integers(0, 256, (96, 32, 32, 3), dtype=np.uint8)
labels = rng.integers(0, 10, 96).astype(np.int32)
sched = training.lr_schedule("triangular", 0.2, 20)
tx = training.optimiser(sched, 0.85, True, 5e-4, 4.0)
out = {}
for lookahead in (False, True):
    results = []
    for m in (None, mesh):
        state = training.init_state(module, jax.random.key(0), tx, lookahead=lookahead)
        step = training.make_step(module, tx, 0.2, 2, True, total_steps=20, mesh=m)
        losses = []
        for i in range(20):
            order = training.epoch_order(0, i // 3, 96, 32)[i % 3]
            state, (loss, _) = step(state, jnp.asarray(images), jnp.asarray(labels), jnp.asarray(order),
                                    training.batch_key(0, 0, i))
            losses.append(float(loss))
            if i == 9:
                at10 = state
        results.append((at10, state, losses))
    (t1, s1, l1), (t4, s4, l4) = results
    diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves((t1.params, t1.batch_stats)),
                                                               jax.tree.leaves((t4.params, t4.batch_stats))))
    scale = max(float(jnp.max(jnp.abs(a))) for a in jax.tree.leaves(s1.params))
    gaps = [abs(a - b) for a, b in zip(l1, l4)]
    out[f"lookahead={lookahead}"] = {"params": diff, "scale": scale, "loss": max(gaps[:10]), "loss_20": max(gaps), "first_loss": gaps[0],
                                     "replicated": all(a.sharding.is_fully_replicated for a in jax.tree.leaves(s4.params)),
                                     "devices": len(jax.tree.leaves(s4.params)[0].sharding.device_set)}
# the control: batch norm on each device's quarter of the batch (what a data-parallel step must not do)
state = training.init_state(module, jax.random.key(0), tx)
x = jnp.asarray(images[:32], jnp.float32) / 255
def loss_of(xs, ys):
    logits = module.apply({"params": state.params, "batch_stats": state.batch_stats}, xs, mutable=["batch_stats"])[0]["logits"]
    return float(training.cross_entropy(logits, jnp.asarray(ys)))
whole = loss_of(x, labels[:32])
out["per_device_bn_loss_gap"] = abs(whole - np.mean([loss_of(x[i:i + 8], labels[i:i + 8]) for i in range(0, 32, 8)]))
print(json.dumps(out))
'''


def on_four_fake_devices(script: str) -> dict:
    """Runs ``script`` in a fresh process with 4 fake CPU devices; the JSON its last line prints."""
    import json
    import os

    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_data_parallel_training_on_four_fake_devices_equals_one_device():
    """20 steps with BatchNorm (statistics over the global batch), with and without lookahead: the
    batch sharded over 4 devices gives one device's losses, parameters and running statistics to
    float tolerance over the first 10 steps (two lookahead syncs), stays close to the end, and the
    state stays replicated on all four."""
    got = on_four_fake_devices(DATA_PARALLEL)
    gap = got.pop("per_device_bn_loss_gap")
    for case in got.values():
        assert case["replicated"] and case["devices"] == 4, got
        # the first 10 steps differ by reassociation only (an AMD EPYC: 5e-7 in the loss, 3e-6 in the
        # parameters)
        assert case["loss"] < 1e-5 and case["params"] < 1e-4 * max(case["scale"], 1.0), got
        # past the learning rate's peak, rounding grows chaotically with the CPU's kernels (an AMD EPYC:
        # 3.5e-4 by step 20 with lookahead; an Intel Xeon stayed under 1e-4), so the end is bounded loosely
        assert case["loss_20"] < 1e-2, got
    # the first step's loss agrees to rounding; batch norm on each device's quarter instead of the
    # global batch (what a data-parallel step must not do) would move it by far more
    assert max(case["first_loss"] for case in got.values()) < 1e-5 < gap / 10, (got, gap)


DATA_PARALLEL_EVAL = r'''
import json
import jax, jax.numpy as jnp, numpy as np
from jfv import training
from jfv.models import convnet
from jfv.recipes.common import make_mesh

mesh = make_mesh(4, "batch")
module = convnet.ConvNet(widths=(8, 16), batch_norm=True, padding=True, whiten=False, train=False)
params = module.init(jax.random.key(1), jnp.zeros((1, 32, 32, 3)))["params"]
rng = np.random.default_rng(0)
images = rng.integers(0, 256, (70, 32, 32, 3), dtype=np.uint8)
labels = rng.integers(0, 10, 70).astype(np.int32)
apply = lambda p, x: module.apply({"params": p}, x)
out = {}
for tta in (0, 2):
    one = training.evaluate(training.make_eval(apply, tta), params, images, labels, 30)
    ev = training.make_eval(apply, tta, mesh=mesh)
    four = training.evaluate(ev, params, images, labels, 30, mesh)  # 30 -> batches of 32, 8 a device
    split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))
    hlo = ev.lower(params, *(jax.device_put(a, split) for a in (images[:32], labels[:32], np.ones(32, np.float32)))
                   ).compile().as_text()
    out[tta] = {"accuracy": [one.accuracy, four.accuracy], "loss": [one.loss, four.loss],
                "same_predictions": bool(np.array_equal(one.predictions, four.predictions)),
                "per_device_batch": "u8[8,32,32,3]" in hlo, "whole_batch": "u8[32,32,32,3]" in hlo}
print(json.dumps(out))
'''


def test_data_parallel_evaluation_splits_each_batch_and_equals_one_device():
    """The data-parallel recipe's evaluation (``make_eval(mesh=)``) runs each device on its share of a
    batch (8 of 32 images on 4 fake devices: the batch size 30 rounded up to a multiple of 4) and
    gives one device's accuracy, loss and predictions, plain and with level-2 TTA."""
    got = on_four_fake_devices(DATA_PARALLEL_EVAL)
    for case in got.values():
        assert case["accuracy"][0] == case["accuracy"][1] and case["same_predictions"], got
        assert abs(case["loss"][0] - case["loss"][1]) < 1e-5 * max(1.0, abs(case["loss"][0])), got
        assert case["per_device_batch"] and not case["whole_batch"], got


def test_data_parallel_recipe_states_its_batches_and_refuses_an_uneven_split(shared, tmp_path):
    import json
    import os

    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    base = [sys.executable, "-m", "jfv", "--config=configs/cifar10_train_tiny.py", "--config.epochs=1",
            "--config.small_epochs=0", "--config.am_steps=0", "--config.devices=4"]
    bad = subprocess.run(base + [f"--workdir={tmp_path / 'bad'}"], env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=600)
    assert bad.returncode == 2 and "batch_size=50 does not split over devices=4 (4 devices): use a multiple of 4, e.g. 52" \
        in bad.stderr and "Traceback" not in bad.stderr, bad.stderr[-2000:]
    assert not (tmp_path / "bad" / "job.json").exists()
    ok = subprocess.run(base + [f"--workdir={tmp_path / 'ok'}", "--config.batch_size=40"], env=env, cwd=REPO,
                        capture_output=True, text=True, timeout=900)
    assert ok.returncode == 0, ok.stderr[-3000:]
    manifest = json.loads((tmp_path / "ok" / "manifest.json").read_text())
    assert manifest["batch"] == {"global": 40, "devices": 4, "per_device": 10}
    assert 0.0 <= manifest["model"]["test_accuracy"] <= 1.0


def test_two_processes_under_jax_distributed_train_as_one_process(shared, tmp_path):
    """One epoch of the tiny run over 2 processes with 2 fake devices each (the batch sharded over all 4,
    gradients and BatchNorm statistics over the global batch) gives one process's losses, accuracies and
    trained parameters on 4 devices to float tolerance; process 0 writes; a resume with one process is
    refused, naming both counts."""
    import csv
    import json
    import os
    import socket

    from jfv.models.weights import restore

    base = [sys.executable, "-m", "jfv", "--config=configs/cifar10_train_tiny.py", "--config.epochs=1",
            "--config.small_epochs=0", "--config.am_steps=0", "--config.batch_size=40", f"--config.shared_dir={shared}"]
    env4 = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    one = subprocess.run(base + [f"--workdir={tmp_path / 'one'}", "--config.devices=4"], env=env4, cwd=REPO,
                         capture_output=True, text=True, timeout=900)
    assert one.returncode == 0, one.stderr[-3000:]
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    env2 = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    args = base + [f"--workdir={tmp_path / 'two'}", "--config.distributed=True",
                   f"--config.coordinator_address=localhost:{port}", "--config.num_processes=2"]
    procs = [subprocess.Popen(args + [f"--config.process_id={i}"], env=env2, cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=900)
        assert p.returncode == 0, err[-3000:]

    def rows(run):
        with open(tmp_path / run / "metrics.csv") as f:
            return list(csv.DictReader(f))

    a, b = rows("one"), rows("two")
    assert len(a) == len(b) == 1
    for col in ("train_loss", "test_loss"):
        assert float(a[0][col]) == pytest.approx(float(b[0][col]), abs=1e-3), (a, b)
    for col in ("train_accuracy", "test_accuracy"):  # a prediction at a tie may flip: a count or two
        assert abs(float(a[0][col]) - float(b[0][col])) <= 0.02, (a, b)
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["batch"] == {"global": 40, "devices": 4, "per_device": 10} and manifest["processes"] == 2
    arch = manifest["model"]["path"]
    pa, _ = restore(tmp_path / "one" / arch, "")
    pb, _ = restore(tmp_path / "two" / arch, "")
    la, lb = jax.tree.leaves(pa), jax.tree.leaves(pb)
    assert len(la) == len(lb) > 0
    for x, y in zip(la, lb):
        np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-3 * max(1.0, float(np.abs(x).max())))
    again = subprocess.run(base + [f"--workdir={tmp_path / 'two'}"], cwd=REPO, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 2 and "processes (2 -> '<absent>')" in again.stderr, again.stderr[-2000:]
