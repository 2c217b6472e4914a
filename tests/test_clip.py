"""Chapter 5.7: caption data, open_clip models and checkpoints, ClipLoss across ranks, retrieval metrics, index."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
import torch.multiprocessing as mp

from genlab.data import captions as C
from genlab.data.shards import decode_batch, read_shards
from genlab.eval.retrieval import _matches, attribute_exact, recall_at_k
from genlab.multimodal.index import EmbeddingIndex
from genlab.multimodal.models import CONFIG_DIR, OUR_MODELS, create_clip, encode_text_trimmed, prepare_images

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rows():
    return {split: C.make_rows(split, 400, seed=3) for split in C.SPLITS}


def test_caption_rows_are_seeded_and_consistent(rows):
    again = C.make_rows("train", 400, seed=3)
    assert [r["caption"] for r in again] == [r["caption"] for r in rows["train"]]
    assert all(np.array_equal(a["image"], b["image"]) for a, b in zip(again, rows["train"]))
    other = C.make_rows("train", 50, seed=4)
    assert [r["caption"] for r in other] != [r["caption"] for r in rows["train"][:50]]
    for r in rows["train"]:
        assert r["image"].shape == (3, 32, 32) and r["image"].dtype == np.uint8 and r["image"].max() > 100
        for o in r["attrs"]["objects"]:
            assert o["colour"] in r["caption"]  # every caption names every object's colour and class
            assert any(s in r["caption"] for s in C.SYNONYMS[C.CLASSES[o["class"]]])
        if "pos" in r["attrs"]["named"]:
            assert r["attrs"]["objects"][0]["pos"] in r["caption"]


def test_an_objects_colour_is_drawn_in_its_pixels(rows):
    for r in rows["train"][:100]:
        if len(r["attrs"]["objects"]) == 1:
            colour = np.asarray(C.COLOURS[r["attrs"]["objects"][0]["colour"]], float)
            pixels = r["image"].reshape(3, -1).T.astype(float)
            bright = pixels[np.argsort(pixels.sum(1))[-10:]]
            direction = bright.mean(0) / np.linalg.norm(bright.mean(0))
            assert direction @ (colour / np.linalg.norm(colour)) > 0.98


def test_held_out_combinations_and_templates_never_reach_training(rows):
    assert len(C.HELDOUT_COMBOS) == len(C.CLASSES) * len(C.COLOURS) // 5
    assert {c for c, _ in C.HELDOUT_COMBOS} == set(range(len(C.CLASSES)))  # each class keeps seen colours too
    assert all(C.COLOUR_NAMES[k] != "white" for _, k in C.HELDOUT_COMBOS)
    combo = lambda o: (o["class"], C.COLOUR_NAMES.index(o["colour"]))  # noqa: E731
    train_objects = [o for r in rows["train"] for o in r["attrs"]["objects"]]
    assert not any(combo(o) in C.HELDOUT_COMBOS for o in train_objects)
    assert {o["class"] for o in train_objects} == set(range(20)) and {o["colour"] for o in train_objects} == set(C.COLOURS)
    assert all(combo(o) in C.HELDOUT_COMBOS for r in rows["test_combos"] for o in r["attrs"]["objects"])
    assert all(r["attrs"]["template"] in C.HELDOUT_TEMPLATES for r in rows["test_templates"])
    assert not any(r["attrs"]["template"] in C.HELDOUT_TEMPLATES for r in rows["train"] + rows["test_combos"])
    assert not any("to the right of" in r["caption"] for r in rows["train"])  # the held-out relation's frame
    assert any(" on the right of " in r["caption"] for r in rows["train"])  # its words are all seen (v3)


def test_caption_shards_round_trip_as_rgb_images_and_tokens(tmp_path, rows):
    out = C.write_caption_shards(rows["train"][:70], tmp_path / "train", rows_per_shard=32)
    assert len(list(out.glob("*.parquet"))) == 3
    images, tokens = read_shards(out)
    assert images.shape == (70, 3, 32, 32) and tokens.shape == (70, C.CONTEXT_LENGTH)
    assert torch.equal(images[5], torch.from_numpy(rows["train"][5]["image"]))
    assert torch.equal(tokens, C.tokenize([r["caption"] for r in rows["train"][:70]]))
    table = C.read_caption_table(out)
    assert table["captions"][7] == rows["train"][7]["caption"] and table["attrs"][7] == rows["train"][7]["attrs"]
    import pyarrow.parquet as pq

    batch = pq.read_table(out).slice(0, 4).to_pydict()
    x, t = decode_batch(batch)
    assert x.shape == (4, 3, 32, 32) and t.dtype == torch.int64


def test_prepare_images_matches_open_clips_own_transform():
    """Reference: open_clip's PIL preprocess (ToTensor + its default normalisation) on the same images."""
    from PIL import Image

    model, preprocess, _ = create_clip("genlab-clip-rn")
    rgb = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    ours = prepare_images(rgb, model)
    ref = torch.stack([preprocess(Image.fromarray(im.permute(1, 2, 0).numpy())) for im in rgb])
    assert torch.allclose(ours, ref, atol=1e-5)
    grey = torch.randint(0, 256, (2, 32, 32), dtype=torch.uint8)  # MNIST-like: grey goes to 3 equal channels
    ref = torch.stack([preprocess(Image.fromarray(im.numpy())) for im in grey])
    assert torch.allclose(prepare_images(grey, model), ref, atol=1e-5)
    assert prepare_images(torch.zeros(1, 28, 28, dtype=torch.uint8), model).shape == (1, 3, 32, 32)
    with pytest.raises(TypeError, match="uint8"):
        prepare_images(torch.zeros(1, 3, 32, 32), model)


@pytest.mark.parametrize("name", OUR_MODELS)
def test_trimmed_text_encoding_equals_open_clips_encode_text(name):
    """The served query path cuts the padding after the batch's last end-of-text token; open_clip's own
    encode_text on the full context is the reference, for short, mixed and context-filling captions."""
    torch.manual_seed(0)
    model, _, tokenizer = create_clip(name)
    model.eval()
    ctx = tokenizer.context_length
    texts = [["a red 7"], ["a red 7", "a small blue sneaker in the top left next to a green two"],
             [" ".join(["seven"] * (2 * ctx))]]  # truncated by the tokenizer: end-of-text at the last position
    with torch.no_grad():
        for batch in texts:
            tokens = tokenizer(batch)
            assert torch.allclose(encode_text_trimmed(model, tokens), model.encode_text(tokens, normalize=True),
                                  atol=1e-5)
    assert int(tokenizer(texts[-1]).argmax(dim=-1)) == ctx - 1


def test_our_checkpoint_loads_in_plain_open_clip(tmp_path):
    """The model.safetensors of a genlab checkpoint, loaded by open_clip alone (no genlab import), embeds the same."""
    from genlab.core.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model, _, tokenizer = create_clip("genlab-clip-rn")
    ckpt = save_checkpoint(tmp_path / "ckpt", family="clip", config={"model": "genlab-clip-rn"}, model=model)
    x = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    torch.save(x, tmp_path / "x.pt")
    model.eval()
    with torch.no_grad():
        ours = torch.cat([model.encode_image(prepare_images(x, model)), model.encode_text(tokenizer(["a red 7"]))])
    script = f"""
import sys, torch, open_clip
open_clip.add_model_config({str(CONFIG_DIR)!r})
m, _, pre = open_clip.create_model_and_transforms("genlab-clip-rn", pretrained={str(ckpt / 'model.safetensors')!r})
assert not any(k.startswith("genlab") for k in sys.modules)
m.eval()
x = torch.load({str(tmp_path / 'x.pt')!r}).float() / 255
n = pre.transforms[-1]
with torch.no_grad():
    out = torch.cat([m.encode_image(n(x)), m.encode_text(open_clip.get_tokenizer("genlab-clip-rn")(["a red 7"]))])
torch.save(out, {str(tmp_path / 'out.pt')!r})
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert torch.allclose(torch.load(tmp_path / "out.pt"), ours, atol=1e-5)


def test_pretrained_tags_fail_clearly_offline():
    from genlab.multimodal.models import PretrainedUnavailable

    with pytest.raises(PretrainedUnavailable, match="not a file and not a tag"):
        create_clip("ViT-B-32", "no-such-tag")
    with pytest.raises(PretrainedUnavailable, match="need the internet"):  # a real tag: its download fails here
        create_clip("ViT-B-32", "laion2b_s34b_b79k")
    with pytest.raises(ValueError, match="unknown model"):
        create_clip("genlab-clip-nope")
    assert set(OUR_MODELS) == {"genlab-clip-rn", "genlab-clip-vit"}


def _sides(caption: str) -> dict:
    """Colour -> side, read from a two-object caption by hand (a reference independent of `hard_negative`)."""
    colour = lambda text: next(w for w in text.split() if w in C.COLOURS)  # noqa: E731
    for relation, first, second in ((" to the left of ", "left", "right"), (" to the right of ", "right", "left"),
                                    (" on the left of ", "left", "right"), (" on the right of ", "right", "left")):
        if relation in caption:
            x, y = caption.split(relation)
            return {colour(x): first, colour(y): second}
    x, s1, y, s2 = re.match(r"^(.+) on the (left|right) and (.+) on the (left|right)$", caption).groups()
    return {colour(x): s1, colour(y): s2}


def test_hard_negatives_name_the_same_things_in_a_way_that_does_not_fit(rows):
    """Sides swapped for two objects with sides (applied twice: the caption again), colours swapped for "next to",
    one colour replaced otherwise; deterministic; the token path gives the text path's tokens."""
    colours = set(C.COLOURS)
    seen = set()
    for r in rows["train"] + rows["test_templates"]:
        cap, neg, template = r["caption"], C.hard_negative(r["caption"]), r["attrs"]["template"]
        seen.add(template)
        assert neg != cap and neg == C.hard_negative(cap)
        words, neg_words = re.findall(r"[\w-]+", cap), re.findall(r"[\w-]+", neg)
        if "side" in r["attrs"]["named"]:
            assert sorted(words) == sorted(neg_words) and C.hard_negative(neg) == cap
            a, b = (o["colour"] for o in r["attrs"]["objects"])  # left, right
            if a != b:  # the caption puts the left object's colour on the left; the negative on the right
                assert _sides(cap) == {a: "left", b: "right"} and _sides(neg) == {a: "right", b: "left"}, (cap, neg)
        elif template == "_t2_next" and len({o["colour"] for o in r["attrs"]["objects"]}) == 2:
            a, b = (o["colour"] for o in r["attrs"]["objects"])
            assert [w for w in neg_words if w in colours] == [w for w in words if w in colours][::-1]
        else:
            changed = [(w, v) for w, v in zip(words, neg_words) if w != v and w not in ("a", "an")]
            assert len(changed) == 1 and changed[0][0] in colours and changed[0][1] in colours
    assert {"_t2_sides", "_t2_left_of", "_t2_sides_reversed", "_t2_next", "_t2_on_left_of", "_t2_on_right_of",
            "_h2_right_of", "_t_bare"} <= seen
    caps = [r["caption"] for r in rows["train"][:64]]
    assert torch.equal(C.hard_negative_tokens(C.tokenize(caps)), C.tokenize([C.hard_negative(c) for c in caps]))
    with pytest.raises(ValueError, match="not one of genlab's caption templates"):
        C.hard_negative("a photo of a dog")


def test_hard_negative_loss_scores_images_against_captions_and_negatives():
    from genlab.multimodal.loss import HardNegativeClipLoss

    torch.manual_seed(0)
    img, txt, neg = (torch.nn.functional.normalize(torch.randn(6, 8), dim=1) for _ in range(3))
    scale = torch.tensor(10.0)
    plain = open_clip.ClipLoss(local_loss=True, gather_with_grad=True)(img, txt, scale)
    assert torch.allclose(HardNegativeClipLoss()(img, txt, scale), plain)
    labels = torch.arange(6)
    expected = (torch.nn.functional.cross_entropy(scale * img @ torch.cat([txt, neg]).T, labels)
                + torch.nn.functional.cross_entropy(scale * txt @ img.T, labels)) / 2
    got = HardNegativeClipLoss()(img, txt, scale, neg)
    assert torch.allclose(got, expected) and got > plain  # a negative can only add to the image -> text loss


def _loss_and_grads(rank, world, model, images, tokens, hard_negatives=False):
    from genlab.multimodal.loss import HardNegativeClipLoss

    loss_fn = HardNegativeClipLoss(rank=rank, world_size=world)
    n = len(images) // world
    sl = slice(rank * n, (rank + 1) * n)
    texts = torch.cat([tokens[sl], C.hard_negative_tokens(tokens[sl])]) if hard_negatives else tokens[sl]
    img, txt, scale = model(prepare_images(images[sl], model), texts)
    loss = loss_fn(img, txt[:n], scale, txt[n:] if hard_negatives else None)
    model.zero_grad()
    loss.backward()
    return loss.detach(), torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def _rank_worker(rank, world, port, out_dir, hard_negatives):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    model, images, tokens = _fixed_model_and_batch()
    loss, grads = _loss_and_grads(rank, world, model, images, tokens, hard_negatives)
    dist.all_reduce(loss), dist.all_reduce(grads)  # what DDP does: mean over ranks
    if rank == 0:
        torch.save({"loss": loss / world, "grads": grads / world}, Path(out_dir) / "ranks.pt")
    dist.destroy_process_group()


def _fixed_model_and_batch():
    torch.manual_seed(0)
    model, _, tokenizer = create_clip("genlab-clip-rn")
    model.eval()  # BatchNorm in eval: per-rank batch statistics would differ from the global batch's
    rows = C.make_rows("train", 8, seed=0)
    images = torch.from_numpy(np.stack([r["image"] for r in rows]))
    return model, images, C.tokenize([r["caption"] for r in rows])


@pytest.mark.parametrize("hard_negatives", [False, True])
def test_clip_loss_on_two_ranks_equals_the_global_batch(tmp_path, hard_negatives):
    """ClipLoss(local_loss, gather_with_grad) on 2 gloo ranks, gradients averaged as DDP does, gives the loss and
    gradients of one process holding the whole batch: the negatives (and hard negatives) come from every rank."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank_worker, args=(2, port, str(tmp_path), hard_negatives), nprocs=2, join=True)
    ranks = torch.load(tmp_path / "ranks.pt")
    model, images, tokens = _fixed_model_and_batch()
    loss, grads = _loss_and_grads(0, 1, model, images, tokens, hard_negatives)
    assert torch.allclose(ranks["loss"], loss, atol=1e-5)
    assert torch.allclose(ranks["grads"], grads, atol=1e-5, rtol=1e-4)


def test_recall_at_k_and_attribute_exact_on_known_answers():
    eye = torch.eye(6)
    r = recall_at_k(eye, eye)
    assert r["text_to_image_R@1"] == 1.0 and r["image_to_text_median_rank"] == 1.0
    shifted = eye[[1, 2, 3, 4, 5, 0]] + 0.5 * eye  # caption i is closest to image i+1, then to image i
    r = recall_at_k(eye, shifted)
    assert r["text_to_image_R@1"] == 0.0 and r["text_to_image_R@5"] == 1.0 and r["image_to_text_R@1"] == 0.0
    assert r["text_to_image_median_rank"] == 2.0
    red7 = {"objects": [{"class": 7, "colour": "red", "size": "small", "pos": "top left"}], "named": ["class", "colour"]}
    red7_big = {"objects": [{"class": 7, "colour": "red", "size": "large", "pos": "center"}], "named": ["class", "colour", "size"]}
    blue7 = {"objects": [{"class": 7, "colour": "blue", "size": "small", "pos": "top left"}], "named": ["class", "colour"]}
    assert _matches(red7, red7_big) and not _matches(red7_big, red7) and not _matches(red7, blue7)
    pair = lambda a, b, named: {"objects": [a, b], "named": named}  # noqa: E731
    o7, o3 = {"class": 7, "colour": "red"}, {"class": 3, "colour": "blue"}
    assert _matches(pair(o7, o3, ["class", "colour"]), pair(o3, o7, ["class", "colour"]))
    assert not _matches(pair(o7, o3, ["class", "colour", "side"]), pair(o3, o7, ["class", "colour"]))
    feats = torch.eye(3)
    res = attribute_exact(feats, feats[[0, 0, 2]], [red7, red7_big, blue7])  # caption 1 retrieves image 0
    assert res["attribute_exact_top1"] == pytest.approx(2 / 3)


def test_index_exact_search_incremental_add_and_reload(tmp_path):
    gen = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(500, 16, generator=gen), dim=1)
    index = EmbeddingIndex(16, "genlab-clip-rn")
    assert index.search(emb[:1], 5)[1] == [[]]
    assert index.add([f"a/{i}" for i in range(300)], emb[:300]) == 300
    assert index.add([f"a/{i}" for i in range(200, 500)], emb[200:]) == 200  # only the new ids
    scores, ids = index.search(emb[[7, 450]] * 3.0, k=4)  # queries need not be normalised
    brute = (emb[[7, 450]] @ emb.t()).topk(4, dim=1)
    assert ids == [[f"a/{j}" for j in row] for row in brute.indices.tolist()]
    assert torch.allclose(scores, brute.values, atol=1e-6)
    one_scores, one_ids = index.search(emb[450], k=4)  # one query takes the numpy path
    assert one_ids == ids[1:] and torch.allclose(one_scores, scores[1:], atol=1e-6)
    loaded = EmbeddingIndex.load(index.save(tmp_path / "idx"))
    assert loaded.ids == index.ids and loaded.model == "genlab-clip-rn"
    assert torch.allclose(loaded.embeddings, index.embeddings, atol=2e-3)  # stored as float16
    assert json.loads((tmp_path / "idx" / "index.json").read_text())["count"] == 500
    with pytest.raises(ValueError, match="width"):
        index.add(["x"], torch.randn(1, 8))
    with pytest.raises(FileNotFoundError, match="jobs/index.py"):
        EmbeddingIndex.load(tmp_path / "nothing")


def test_faiss_index_recall_against_exact():
    gen = torch.Generator().manual_seed(1)
    centres = torch.randn(50, 32, generator=gen)
    emb = centres[torch.randint(0, 50, (5000,), generator=gen)] + 0.3 * torch.randn(5000, 32, generator=gen)
    index = EmbeddingIndex(32)
    index.add([str(i) for i in range(5000)], emb)
    with pytest.raises(RuntimeError, match="build_ann"):
        index.search_ann(emb[:1])
    for kind in ("ivf", "hnsw"):
        index.build_ann(kind)
        assert index.recall_vs_exact(emb[:100], k=10) >= 0.9, kind


def test_two_writers_of_one_index_lose_no_add_and_a_killed_saves_leftovers_go(tmp_path):
    """The search server and jobs/index.py may both write one index directory: each save merges what the other
    saved since it loaded, under the directory's lock."""
    from genlab.multimodal.index import EmbeddingIndex

    base = EmbeddingIndex(4, "m")
    base.add(["a"], torch.eye(4)[:1])
    base.save(tmp_path)
    server, job = EmbeddingIndex.load(tmp_path), EmbeddingIndex.load(tmp_path)
    server.add(["b"], torch.eye(4)[1:2])
    server.save(tmp_path)
    (tmp_path / ".index-killed").mkdir()  # what a save killed half-way leaves
    job.add(["c", "d"], torch.eye(4)[2:])
    job.save(tmp_path)  # its copy never saw "b": merged in, not overwritten
    back = EmbeddingIndex.load(tmp_path)
    assert sorted(back.ids) == ["a", "b", "c", "d"]
    assert torch.allclose(back.embeddings[back.ids.index("b")], torch.eye(4)[1], atol=1e-3)
    assert not list(tmp_path.glob(".index-*"))
