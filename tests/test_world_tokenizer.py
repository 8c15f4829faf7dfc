"""World tokens (issue 3): tokenize CLI -> table -> the policy's online tokenizer, on real decoded frames."""

import json
from pathlib import Path

import pytest
import torch

from lerobot_world.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]
KEY = "observation.images.image"


def run_tokenize(root, out, *extra):
    cli_main(["tokenize", "--dataset.repo_id=local/toy_libero", f"--dataset.root={root}", f"--output_dir={out}",
              "--vocab_size=8", "--num_workers=0", *extra])


def run_tokenize_error(capsys, root, out, *extra) -> str:
    with pytest.raises(SystemExit) as e:
        run_tokenize(root, out, *extra)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def toy_table(toy_dataset_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tables") / "toy_v8"
    run_tokenize(toy_dataset_root, out)
    return out


@pytest.fixture(scope="module")
def toy_frames(toy_dataset):
    """Every frame of the camera as LeRobotDataset returns it (float32 [0, 1] CHW), with its index."""
    items = [toy_dataset[i] for i in range(len(toy_dataset))]
    return torch.stack([it[KEY] for it in items]), torch.tensor([int(it["index"]) for it in items])


def test_world_tok_table_matches_online_tokenizer(toy_table, toy_frames, toy_dataset):
    from safetensors.torch import load_file, save_file

    from lerobot_world.splits import split_dataset
    from lerobot_world.tokens.table import WorldTokenTable
    from lerobot_world.tokens.tokenizer import WorldTokenizer

    table = WorldTokenTable.load(toy_table)
    imgs, index = toy_frames
    assert imgs.dtype == torch.float32 and len(imgs) == toy_dataset.meta.total_frames == len(table.tokens)
    expected = table.tokens[index]
    tok = table.build_tokenizer()
    assert torch.equal(tok(imgs), expected)  # one batch
    assert torch.equal(torch.cat([tok(imgs[i : i + 1]) for i in range(len(imgs))]), expected)  # live: one frame
    assert torch.equal(torch.cat([tok(b) for b in imgs.split(7)]), expected)
    assert len(expected.unique()) > 1  # not a degenerate constant table
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a policy under --policy.use_amp=true
        assert torch.equal(tok(imgs), expected)

    # Checkpoint path: spec JSON + state dict through safetensors, as the policy saves/loads it.
    sd_file = toy_table.parent / "policy_like.safetensors"
    save_file({f"world_tokenizer.{k}": v.contiguous() for k, v in tok.state_dict().items()}, sd_file)
    rebuilt = WorldTokenizer.from_spec_json(tok.spec_json())
    assert not torch.equal(rebuilt.codebook, tok.codebook)  # fresh: nothing loaded yet
    loaded = {k.removeprefix("world_tokenizer."): v for k, v in load_file(sd_file).items()}
    rebuilt.load_state_dict(loaded, strict=True)
    assert torch.equal(rebuilt(imgs), expected)

    # meta: identity, split (the project's rule), stats
    m = table.meta
    split = split_dataset(toy_dataset.meta, 0.2)
    assert table.train_episodes == split.train == m["fit"]["episodes"] and table.heldout_episodes == split.heldout
    assert m["image_key"] == KEY and m["encoder"] == "pixel_pca" and table.vocab_size == tok.vocab_size == 8
    assert m["dataset"]["total_frames"] == len(imgs) and m["fit"]["frames"] < len(imgs)
    assert [h["k"] for h in m["stats"]["horizons"]] == list(range(1, 9))
    assert 1 <= m["stats"]["train"]["perplexity"] <= 8
    table.check_matches(toy_dataset.meta)  # fresh table matches its dataset


def test_world_tok_input_contract(toy_table, toy_frames):
    from lerobot_world.tokens.table import WorldTokenTable

    tok = WorldTokenTable.load(toy_table).build_tokenizer()
    imgs, _ = toy_frames
    ref = tok(imgs[:16])
    assert ref.dtype == torch.int64 and ref.shape == (16,)
    assert torch.equal(tok(imgs[:16].double()), ref)
    assert torch.equal(tok((imgs[:16] * 255).round().to(torch.uint8)), ref)
    assert tok.embed(imgs[:4]).shape == (4, json.loads(tok.spec_json())["embed_dim"])
    # any H, W: a 2x nearest-upsampled frame has the same area-pooled pixels
    assert torch.equal(tok(torch.nn.functional.interpolate(imgs[:16], scale_factor=2, mode="nearest")), ref)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        tok(imgs[:2] * 2 - 1)  # e.g. ImageNet-normalised input is refused, not silently clamped
    tok.train()
    assert not tok.training and all(not p.requires_grad for p in tok.parameters())
    assert set(tok.state_dict()) == {"encoder.mean", "encoder.proj", "codebook"}


def test_world_tok_deterministic_and_idempotent(toy_table, toy_dataset_root, tmp_path, capsys):
    out = tmp_path / "again"
    run_tokenize(toy_dataset_root, out)
    for f in ("tokens.parquet", "tokenizer.safetensors", "tokenizer_spec.json", "meta.json"):
        assert (out / f).read_bytes() == (toy_table / f).read_bytes(), f
    capsys.readouterr()
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    run_tokenize(toy_dataset_root, out)  # identical settings: say so and leave it
    assert "already holds this table" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes
    # another seed gives another codebook (so the equality above is not vacuous)
    other = tmp_path / "seed1"
    run_tokenize(toy_dataset_root, other, "--seed=1", "--kmeans_iters=1")
    assert (other / "tokenizer.safetensors").read_bytes() != (toy_table / "tokenizer.safetensors").read_bytes()


def test_world_tok_fit_uses_training_episodes_only(toy_table, toy_dataset_root, tmp_path, monkeypatch):
    """Replace every held-out frame by noise: PCA + codebook (and training tokens) must not change."""
    from lerobot_world.tokens import tokenize as tokenize_cli
    from lerobot_world.tokens.table import WorldTokenTable

    ref = WorldTokenTable.load(toy_table)
    heldout = set(ref.heldout_episodes)
    orig = tokenize_cli.CameraSegments.__getitem__

    def noisy(self, j):
        frames, idx, ep = orig(self, j)
        if int(ep[0]) in heldout:  # a segment lies inside one episode
            gen = torch.Generator().manual_seed(int(idx[0]))
            frames = torch.randint(0, 256, frames.shape, generator=gen, dtype=torch.uint8)
        return frames, idx, ep

    monkeypatch.setattr(tokenize_cli.CameraSegments, "__getitem__", noisy)
    out = tmp_path / "noisy_heldout"
    run_tokenize(toy_dataset_root, out)
    new = WorldTokenTable.load(out)
    a, b = ref.build_tokenizer().state_dict(), new.build_tokenizer().state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    train = torch.isin(ref.episode_index, torch.tensor(ref.train_episodes))
    assert torch.equal(ref.tokens[train], new.tokens[train])
    assert not torch.equal(ref.tokens[~train], new.tokens[~train])  # the noise did reach held-out frames


def test_world_tok_bad_inputs(toy_table, toy_dataset_root, tmp_path, capsys):
    out = tmp_path / "t"
    err = run_tokenize_error(capsys, toy_dataset_root, out, "--encoder=resnet_magic")
    assert "resnet_magic" in err and "pixel_pca" in err
    err = run_tokenize_error(capsys, toy_dataset_root, out, "--image_key=observation.images.front")
    assert "observation.images.front" in err and "observation.images.image2" in err
    err = run_tokenize_error(capsys, toy_dataset_root, out, "--vocab_size=100000")
    assert "100000" in err and "training episodes" in err
    err = run_tokenize_error(capsys, toy_dataset_root, toy_table, "--vocab_size=4")  # holds the V=8 table
    assert "different world-token table" in err and "vocab_size" in err
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("x")
    err = run_tokenize_error(capsys, toy_dataset_root, junk)
    assert "not empty" in err and str(junk) in err
    # nothing half-written anywhere
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["junk"]
    assert sorted(p.name for p in toy_table.parent.iterdir() if p.name.startswith(".")) == []


def test_world_tok_hub_id_offline_is_one_clear_error(toy_dataset_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    err = run_tokenize_error(capsys, toy_dataset_root, tmp_path / "t", "--encoder=facebook/dinov2-small")
    assert "facebook/dinov2-small" in err and "pixel_pca" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "t").exists()


def test_world_tok_tiny_dinov2_offline(toy_dataset_root, toy_frames, tmp_path):
    """Pretrained-encoder path with a randomly initialised tiny DINOv2 saved locally (no network)."""
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    from lerobot_world.tokens.table import WorldTokenTable
    from lerobot_world.tokens.tokenizer import WorldTokenizer

    torch.manual_seed(0)
    model_dir = tmp_path / "tiny_dinov2"
    cfg = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8)
    Dinov2Model(cfg).save_pretrained(model_dir)
    BitImageProcessor(crop_size={"height": 32, "width": 32}, size={"shortest_edge": 32}).save_pretrained(model_dir)
    out = tmp_path / "dino_table"
    run_tokenize(toy_dataset_root, out, f"--encoder={model_dir}")
    table = WorldTokenTable.load(out)
    spec = json.loads((out / "tokenizer_spec.json").read_text())
    assert spec["encoder"]["name"] == "hf" and spec["encoder"]["config"]["hidden_size"] == 32
    assert spec["encoder"]["image_size"] == 32
    imgs, index = toy_frames
    tok = table.build_tokenizer()
    assert torch.equal(tok(imgs), table.tokens[index])
    # Under bf16 autocast the encoder's linear layers would run in bf16; WorldTokenizer.embed switches it off.
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(tok(imgs), table.tokens[index])
    # rebuild from the spec alone (weights dir gone: nothing is read from disk or network)
    import shutil

    shutil.rmtree(model_dir)
    rebuilt = WorldTokenizer.from_spec_json(tok.spec_json())
    rebuilt.load_state_dict(tok.state_dict(), strict=True)
    assert torch.equal(torch.cat([rebuilt(b) for b in imgs.split(5)]), table.tokens[index])
    assert all(not p.requires_grad for p in rebuilt.parameters())


def test_world_tok_kmeans_equals_plain_lloyd_and_is_deterministic():
    """The Hamerly-accelerated fit gives plain Lloyd's result (same init), and is seed-deterministic."""
    from lerobot_world.tokens.kmeans import assign, kmeans_fit, kmeans_plusplus

    g = torch.Generator().manual_seed(3)
    x = torch.randn(60, 24, generator=g)[torch.randint(0, 60, (6000,), generator=g)] * 3 + torch.randn(6000, 24, generator=g)
    k, iters = 40, 12
    res = kmeans_fit(x, k, seed=5, max_iter=iters, tol=0.0, init_samples=2048, progress=False)
    # plain Lloyd from the same k-means++ init (same generator calls as kmeans_fit)
    gen = torch.Generator().manual_seed(5)
    sub = torch.randperm(len(x), generator=gen)[:2048].sort().values
    c = kmeans_plusplus(x[sub], k, gen)
    for _ in range(res.n_iter):
        lab, _ = assign(x, c)
        c = torch.stack([x[lab == j].double().mean(0).float() for j in range(k)])
    assert torch.allclose(res.centroids, c, atol=1e-4)
    again = kmeans_fit(x, k, seed=5, max_iter=iters, tol=0.0, init_samples=2048, progress=False)
    assert torch.equal(res.centroids, again.centroids) and torch.equal(res.labels, again.labels)
    other = kmeans_fit(x, k, seed=6, max_iter=iters, tol=0.0, init_samples=2048, progress=False)
    assert not torch.equal(res.centroids, other.centroids)
    with pytest.raises(ValueError, match="k=7"):
        kmeans_fit(x[:5], 7, progress=False)


def test_world_tok_bench_script_runs_tiny(capsys):
    """scripts/bench_tokenizer.py end to end at toy size (in-process: the imports are already paid)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_tokenizer", REPO / "scripts" / "bench_tokenizer.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--frames=3000", "--dim=32", "--vocab=16", "--dinov2=tiny", "--encode_frames=64",
                "--dinov2_frames=16", "--image_size=64", "--device=cpu", "--pipeline_episodes=3", "--num_workers=0",
                "--forward_frames=64"])
    out = capsys.readouterr().out
    res = json.loads(out.strip().splitlines()[-1])
    assert res["pixel_pca_frames_per_s"] > 0 and res["dinov2_tiny_frames_per_s"] > 0 and res["kmeans_fit_s"] > 0
    pipe = res["pipeline"]
    assert pipe["pipeline_encoder"] == "dinov2-tiny" and pipe["pipeline_frames"] > 3 * 10
    assert pipe["decode_frames_per_s"] > 0 and pipe["forward_frames_per_s"] > 0
    assert pipe["pipeline_over_forward"] == pytest.approx(pipe["pipeline_frames_per_s"] / pipe["forward_frames_per_s"])
    assert "k-means fit 3000 x 32, V=16 (mixture data)" in out and "frames/s" in out


def test_world_tok_segments_decode_the_frames_lerobot_returns(toy_dataset_root, toy_frames):
    """tokenize decodes runs of frames per video query; every frame must equal ``dataset[i][key]``, and the
    runs must cover each episode exactly once without crossing an episode boundary."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from lerobot_world.tokens.tokenize import CameraSegments

    ds = LeRobotDataset("local/toy_libero", root=toy_dataset_root, return_uint8=True)
    seg = CameraSegments(ds, KEY, segment_len=5)
    assert seg.video and len(seg) > ds.meta.total_episodes  # several runs per episode at length 5
    imgs, index = toy_frames
    seen = []
    for j in range(len(seg)):
        frames, idx, ep = seg[j]
        assert frames.dtype == torch.uint8 and frames.shape[0] == len(idx) <= 5 and len(set(ep.tolist())) == 1
        pos = [int((index == i).nonzero()) for i in idx]
        assert torch.equal(frames.float() / 255, imgs[pos]), f"segment {j} differs from dataset[i][{KEY!r}]"
        seen += idx.tolist()
    assert sorted(seen) == sorted(index.tolist()) and len(seen) == len(set(seen))
