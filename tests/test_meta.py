"""Chapter 5.6 unit tests: episodic sampler, ProtoNet logits, MAML gradients against a hand-unrolled reference
(second and first order), the 95% CI, data sources. Seconds in all."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from genlab.data.episodes import EpisodeSampler, MixedEpisodeSampler, augment, random_affine
from genlab.data.fewshot import FewShotSet, split_groups
from genlab.eval.fewshot import mean_ci95
from genlab.meta.encoders import Conv4
from genlab.meta.maml import MAML
from genlab.meta.protonet import ProtoNet, prototypes, squared_distances


def toy_set(classes=12, per_class=20, groups=4):
    """Each image is filled with a unique id: (class * 100 + instance) -> overlaps are detectable."""
    ids = torch.arange(classes * per_class)
    images = (ids % 256).to(torch.uint8)[:, None, None].expand(-1, 8, 8).clone()
    labels = ids // per_class
    return FewShotSet(images, labels, [f"c{i}" for i in range(classes)], [f"g{i % groups}" for i in range(classes)])


# -- episodes -------------------------------------------------------------------------------------------------
def test_episode_has_the_right_counts_and_no_support_query_overlap():
    sampler = EpisodeSampler(toy_set(), n_way=5, k_shot=3, n_query=4)
    ep = sampler.sample(torch.Generator().manual_seed(0))
    assert ep.support.shape == (15, 1, 8, 8) and ep.query.shape == (20, 1, 8, 8)
    assert ep.support_labels.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3 + [4] * 3
    assert torch.bincount(ep.query_labels).tolist() == [4] * 5
    assert len({c for c, _ in ep.classes}) == 5
    for k in range(5):  # the same class in support and query, never the same image
        s = set((ep.support[ep.support_labels == k, 0, 0, 0] * 255).round().int().tolist())
        q = set((ep.query[ep.query_labels == k, 0, 0, 0] * 255).round().int().tolist())
        assert len(s) == 3 and len(q) == 4 and not s & q
        assert len({v // 20 for v in s | q}) == 1  # all from one class (ids are class * 20 + instance)


def test_rotations_make_new_classes_and_errors_are_clear():
    data = toy_set(classes=3)
    with pytest.raises(ValueError, match="5-way episodes need 5 classes"):
        EpisodeSampler(data, n_way=5)
    sampler = EpisodeSampler(data, n_way=5, k_shot=1, n_query=2, rotations=True)
    assert sampler.num_classes == 12
    img = torch.zeros(1, 4, 4, dtype=torch.uint8)
    img[0, 0, 1] = 255
    rot = FewShotSet(img.expand(3, -1, -1).clone(), torch.zeros(3, dtype=torch.int64), ["a"], ["g"])
    eps = [EpisodeSampler(rot, 4, 1, 1, rotations=True).sample(torch.Generator().manual_seed(s)) for s in range(3)]
    views = {tuple(ep.support[i, 0].flatten().tolist()) for ep in eps for i in range(4)}
    assert len(views) == 4  # the four quarter turns are four different classes
    x, y = EpisodeSampler(rot, 4, 1, 1, rotations=True).sample_batch(40, torch.Generator().manual_seed(0))
    assert set(y.tolist()) == {0, 1, 2, 3}  # classification labels: class * 4 + quarter turns
    for xi, yi in zip(x, y.tolist()):
        assert torch.equal(xi[0], torch.rot90(img[0].float() / 255, yi % 4))
    with pytest.raises(ValueError, match=">= 1"):
        EpisodeSampler(data, n_way=2, k_shot=0)


def test_random_affine_is_the_identity_at_zero_strength_and_warps_each_image_its_own_way():
    x = torch.zeros(6, 1, 28, 28)
    x[:, :, 8:20, 12:16] = 1.0  # a vertical bar
    same = random_affine(x, torch.Generator().manual_seed(0), rotate=0, scale=0, shear=0, translate=0)
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    warped = random_affine(x, torch.Generator().manual_seed(0))
    assert warped.shape == x.shape and 0 <= float(warped.min()) and float(warped.max()) <= 1 + 1e-6
    assert len({tuple((w > 0.5).flatten().nonzero().flatten().tolist()) for w in warped}) == 6  # six maps
    # ink is moved, not made: the warped bar keeps roughly its area (scale within +-15% per side)
    assert torch.allclose(warped.sum((1, 2, 3)), x.sum((1, 2, 3)), rtol=0.4)
    ep = EpisodeSampler(toy_set(), n_way=3, k_shot=1, n_query=2).sample(torch.Generator().manual_seed(0))
    aug = augment(ep, torch.Generator().manual_seed(1))
    assert aug.support.shape == ep.support.shape and torch.equal(aug.query_labels, ep.query_labels)


def test_mixed_sampler_draws_whole_episodes_from_each_source_at_its_share():
    a, b = toy_set(classes=6), toy_set(classes=6)
    b.images = 255 - b.images  # tell the sources apart by pixel value
    mixed = MixedEpisodeSampler([EpisodeSampler(a, 3, 1, 1), EpisodeSampler(b, 3, 1, 1)], [0.25, 0.75])
    gen = torch.Generator().manual_seed(0)
    from_b = []
    for _ in range(400):
        ep = mixed.sample(gen)
        is_b = {float(v) > 0.5 for v in torch.cat([ep.support, ep.query])[:, 0, 0, 0]}  # a: ids < 120, b: > 135
        assert len(is_b) == 1  # one source per episode
        from_b.append(is_b.pop())
    assert abs(sum(from_b) / 400 - 0.75) < 0.07
    assert mixed.num_classes == 12
    # classification batches for the pretraining baseline: labels of source b come after a's 6 classes
    x, y = mixed.sample_batch(300, gen)
    assert x.shape == (300, 1, 8, 8) and set(y.tolist()) == set(range(12))
    assert ((x[:, 0, 0, 0] > 0.5) == (y >= 6)).all()
    pixel = torch.round(x[:, 0, 0, 0] * 255).long()
    ids = torch.where(y >= 6, 255 - pixel, pixel)  # toy ids are class * 20 + instance
    assert torch.equal(ids // 20, y % 6)  # each image is of the class its label names
    with pytest.raises(ValueError, match="non-negative weight"):
        MixedEpisodeSampler([EpisodeSampler(a, 3, 1, 1)], [0.5, 0.5])


def test_split_by_group_is_disjoint_and_stable():
    groups = [f"script{i}" for i in range(60)]
    a = split_groups(groups)
    assert sorted(a["train"] + a["val"] + a["test"]) == sorted(groups) and all(a.values())
    assert 30 <= len(a["train"]) <= 54  # about 70%
    b = split_groups(groups + ["newscript"])
    for name in a:  # adding a script moves no other script
        assert set(a[name]) <= set(b[name])
    data = toy_set()
    sub = data.subset_groups(["g1"])
    assert sub.num_classes == 3 and sub.labels.max() == 2 and set(sub.class_groups) == {"g1"}


# -- ProtoNets --------------------------------------------------------------------------------------------------
def test_protonet_logits_are_negative_squared_distances_to_class_means():
    torch.manual_seed(0)
    net = ProtoNet(nn.Flatten())
    support, labels = torch.randn(6, 1, 2, 2), torch.tensor([0, 0, 1, 1, 2, 2])
    query = torch.randn(4, 1, 2, 2)
    logits = net(support, labels, query, 3)
    s, q = support.flatten(1), query.flatten(1)
    protos = torch.stack([s[labels == k].mean(0) for k in range(3)])
    expected = -torch.stack([((q - p) ** 2).sum(1) for p in protos], 1)
    torch.testing.assert_close(logits, expected)
    torch.testing.assert_close(squared_distances(q, protos), torch.cdist(q, protos) ** 2, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="support example"):
        prototypes(s[:2], torch.tensor([0, 0]), 2)


def test_test_time_augmentation_averages_each_embedding_over_warps():
    from genlab.meta.train import evaluate, tta_logits

    torch.manual_seed(0)
    net = ProtoNet(nn.Sequential(nn.Flatten(), nn.Linear(64, 5)))  # linear: mean embedding = embedding of the mean
    sampler = EpisodeSampler(toy_set(), n_way=3, k_shot=1, n_query=2)
    ep = sampler.sample(torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(tta_logits(net, ep, 0, torch.Generator()),
                                   net(ep.support, ep.support_labels, ep.query, 3))
        x, g = torch.cat([ep.support, ep.query]), torch.Generator().manual_seed(1)
        mean = (x + sum(random_affine(x, g) for _ in range(3))) / 4
        torch.testing.assert_close(tta_logits(net, ep, 3, torch.Generator().manual_seed(1)),
                                   net(mean[:3], ep.support_labels, mean[3:], 3))
    acc, ci = evaluate(net, sampler, 4, seed=0, tta=2)
    assert 0 <= acc <= 1 and ci >= 0
    with pytest.raises(ValueError, match="ProtoNets"):
        evaluate(MAML(Conv4(hidden=4, n_classes=3), 0.1, 1), sampler, 1, seed=0, tta=2)


def test_conv4_shapes():
    assert Conv4()(torch.zeros(3, 1, 28, 28)).shape == (3, 64)
    assert Conv4(n_classes=5, running_stats=False)(torch.zeros(3, 1, 28, 28)).shape == (3, 5)


# -- MAML --------------------------------------------------------------------------------------------------------
def _reference_maml_grads(net: nn.Sequential, xs, ys, xq, yq, lr, steps, first_order):
    """Hand-unrolled MAML on Linear-Tanh-Linear: explicit forward, explicit SGD steps."""
    w1, b1, w2, b2 = [p.detach().clone().requires_grad_(True) for p in net.parameters()]
    fwd = lambda p, x: torch.tanh(x @ p[0].T + p[1]) @ p[2].T + p[3]  # noqa: E731
    params = [w1, b1, w2, b2]
    for _ in range(steps):
        grads = torch.autograd.grad(F.cross_entropy(fwd(params, xs), ys), params, create_graph=not first_order)
        params = [p - lr * g for p, g in zip(params, grads)]
    outer = F.cross_entropy(fwd(params, xq), yq)
    return torch.autograd.grad(outer, [w1, b1, w2, b2])


@pytest.mark.parametrize("first_order", [False, True])
def test_maml_gradients_match_a_hand_unrolled_two_step_reference(first_order):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    xs, ys, xq, yq = torch.randn(6, 3), torch.tensor([0, 1] * 3), torch.randn(8, 3), torch.tensor([1, 0] * 4)
    maml = MAML(net, inner_lr=0.5, inner_steps=2, first_order=first_order)
    loss, _ = maml.episode_loss(xs, ys, xq, yq)
    loss.backward()
    expected = _reference_maml_grads(net, xs, ys, xq, yq, 0.5, 2, first_order)
    for p, g in zip(net.parameters(), expected):
        torch.testing.assert_close(p.grad, g, atol=1e-6, rtol=1e-5)
    if not first_order:  # second-order terms matter here, so the two modes are distinguishable
        fo = _reference_maml_grads(net, xs, ys, xq, yq, 0.5, 2, True)
        assert max((a - b).abs().max() for a, b in zip(expected, fo)) > 1e-4


def test_maml_adapts_under_no_grad_without_touching_the_meta_parameters():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 2))
    maml = MAML(net, inner_lr=1.0, inner_steps=5)
    before = [p.clone() for p in net.parameters()]
    xs, ys = torch.randn(10, 3), torch.randint(0, 2, (10,))
    with torch.no_grad():
        fast = maml.adapt(xs, ys)
        adapted_loss = F.cross_entropy(maml(xs, fast), ys)
        assert adapted_loss < F.cross_entropy(net(xs), ys)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


# -- evaluation ----------------------------------------------------------------------------------------------------
def test_ci95_formula():
    acc = [0.8, 0.9, 1.0, 0.7]
    mean, ci = mean_ci95(acc)
    assert mean == pytest.approx(0.85)
    assert ci == pytest.approx(1.96 * np.std(acc, ddof=1) / math.sqrt(4))
    with pytest.raises(ValueError):
        mean_ci95([1.0])


# -- data sources --------------------------------------------------------------------------------------------------
def test_image_folder_source(tmp_path):
    from genlab.data.folder import load_folder

    for c in range(3):
        (tmp_path / f"class{c}").mkdir()
        for i in range(4):
            arr = np.full((40, 40), 255, np.uint8)
            arr[10:30, 5 + c * 10: 10 + c * 10] = 0  # dark ink on white paper
            Image.fromarray(arr).save(tmp_path / f"class{c}" / f"{i}.png")
    data = load_folder(tmp_path)
    assert data.images.shape == (12, 28, 28) and data.num_classes == 3
    assert data.images.float().mean() < 127  # inverted: ink bright
    with pytest.raises(FileNotFoundError):
        load_folder(tmp_path / "missing")


def test_fewshot_set_round_trips_through_parquet(tmp_path):
    data = toy_set()
    data2 = FewShotSet(torch.randint(0, 255, (240, 28, 28), dtype=torch.uint8), data.labels, data.class_names,
                       data.class_groups)
    back = FewShotSet.load(data2.save(tmp_path / "set"))
    assert torch.equal(back.images, data2.images) and back.class_groups == data2.class_groups


def test_omniglot_small_sets_from_the_offline_copy(tmp_path):
    from genlab.data.omniglot import load_omniglot
    from genlab.meta.data import OMNIGLOT_CROSS_TEST

    small1 = load_omniglot("images_background_small1", root=tmp_path, download=False)
    assert small1.images.shape == (2720, 28, 28) and small1.num_classes == 136
    assert small1.groups == ["Balinese", "Early_Aramaic", "Greek", "Korean", "Latin"]
    small2 = load_omniglot("images_background_small2", root=tmp_path, download=False)
    assert not set(OMNIGLOT_CROSS_TEST) & set(small1.groups) and set(OMNIGLOT_CROSS_TEST) <= set(small2.groups)
    assert 5 < small1.images.float().mean() < 60  # bright strokes on a dark background
    assert (tmp_path / "fewshot" / "omniglot-images_background_small1-28px" / "_classes.json").exists()


@pytest.mark.parametrize("benchmark", ["omniglot_cross", "omniglot_all"])
def test_handwriting_benchmarks_keep_each_alphabet_on_its_side_of_the_split(tmp_path, monkeypatch, benchmark):
    from genlab.meta import FewShotDataConfig
    from genlab.meta.data import OMNIGLOT_CROSS_TEST, load_splits

    monkeypatch.setenv("GENLAB_DATA_DIR", str(tmp_path))
    s = load_splits(FewShotDataConfig(benchmark=benchmark, glyph_max_scripts=12, glyph_max_per_script=4,
                                      glyph_instances=2))
    names = {k: set(v.class_names) for k, v in s.items()}
    assert names["train_handwritten"] | names["train_glyphs"] == names["train"]
    assert not names["train"] & names["test"] and not names["train"] & names["val"]
    hand_groups = set(s["train_handwritten"].groups)
    if benchmark == "omniglot_cross":  # the three test alphabets are never meta-trained on
        assert set(s["test"].groups) == set(OMNIGLOT_CROSS_TEST) and not hand_groups & set(OMNIGLOT_CROSS_TEST)
        assert s["train_handwritten"].num_classes == 136
    else:  # the model for new alphabets: every hand-drawn character here (small2's Greek/Latin are small1's)
        assert set(OMNIGLOT_CROSS_TEST) <= hand_groups and s["train_handwritten"].num_classes == 136 + 106


def test_glyphs_render_letters_of_several_scripts_with_distortions():
    from genlab.data.glyphs import GlyphConfig, build_glyphs

    data = build_glyphs(GlyphConfig(instances=3, max_per_script=4, max_scripts=6), progress=False)
    assert data.images.shape[1:] == (28, 28) and len(data.groups) >= 4
    assert data.num_classes == 4 * len(data.groups) and len(data.images) == 3 * data.num_classes
    first = data.images[data.labels == 0].float()
    assert first.mean() > 10 and (first[0] - first[1]).abs().mean() > 1  # ink, and instances differ


def test_thinning_leaves_one_pixel_centre_lines_and_keeps_loops_closed():
    from scipy import ndimage

    from genlab.data.glyphs import GlyphConfig, build_glyphs, thin

    bar = np.zeros((20, 40), bool)
    bar[6:15, 5:35] = True  # 9 px thick
    line = thin(bar)
    assert (line[:, 10:30].sum(0) == 1).all() and line[:, 10:30].any(1).sum() == 1  # one row, 1 px thick
    yy, xx = np.mgrid[:40, :40]
    ring = ((yy - 20) ** 2 + (xx - 20) ** 2 <= 15 ** 2) & ((yy - 20) ** 2 + (xx - 20) ** 2 >= 9 ** 2)
    thinned = thin(ring)
    assert thinned.sum() < ring.sum() / 3 and ndimage.label(~thinned)[1] == 2  # still encloses its hole
    filled = build_glyphs(GlyphConfig(instances=2, max_per_script=3, max_scripts=3), progress=False)
    strokes = build_glyphs(GlyphConfig(instances=2, max_per_script=3, max_scripts=3, style="strokes"),
                           progress=False)
    assert filled.class_names == strokes.class_names
    assert strokes.images.float().mean() < filled.images.float().mean() / 2  # Omniglot-thin pen
    with pytest.raises(ValueError, match="style"):
        GlyphConfig(style="bold")


@pytest.mark.parametrize("algo", ["protonet", "maml", "pretrain"])
def test_meta_training_resumes_exactly(tmp_path, algo):
    """Crash after the first checkpoint, resume: the same weights as an uninterrupted run."""
    from genlab.core.checkpoint import find_latest_checkpoint, load_model
    from genlab.core.runtime import LocalRuntime
    from genlab.meta import MetaConfig
    from genlab.meta.config import smoke_config
    from genlab.meta.train import train
    from tests.resume_helpers import Crash, CrashAfterFirstCheckpoint

    cfg = smoke_config(MetaConfig(algo=algo, tasks_per_batch=2))
    train(cfg, LocalRuntime(tmp_path / "straight", {}, seed=0))
    with pytest.raises(Crash):
        train(cfg, CrashAfterFirstCheckpoint(tmp_path / "resumed", {}, seed=0))
    torch.manual_seed(123)
    train(cfg, LocalRuntime(tmp_path / "resumed", {}, seed=0))
    a = load_model(find_latest_checkpoint(tmp_path / "straight")).state_dict()
    b = load_model(find_latest_checkpoint(tmp_path / "resumed")).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
