"""Token table: loading errors, statistics, and the dataset fingerprint check at training start."""

import shutil

import pytest
import torch

from lerobot_world.cli import main as cli_main

TOY_REPO_ID = "local/toy_libero"  # as in tests/conftest.py


@pytest.fixture(scope="module")
def table_and_copy(toy_dataset_root, tmp_path_factory):
    """A table made from a private copy of the toy dataset (the copy is ours to modify)."""
    base = tmp_path_factory.mktemp("fp")
    root = base / "toy_copy"
    shutil.copytree(toy_dataset_root, root)
    out = base / "table"
    cli_main(["tokenize", f"--dataset.repo_id={TOY_REPO_ID}", f"--dataset.root={root}", f"--output_dir={out}",
              "--vocab_size=4", "--num_workers=0", "--kmeans_iters=3"])
    return out, root


def _meta(root):
    from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata

    return LeRobotDatasetMetadata(TOY_REPO_ID, root=root)


def test_token_table_fingerprint_detects_changed_and_added_frames(table_and_copy, toy_dataset_root, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lerobot_world.tokens.table import WorldTokenTable, dataset_fingerprint
    from lerobot_world.toy_dataset import make_toy_dataset

    out, root = table_and_copy
    table = WorldTokenTable.load(out)
    table.check_matches(_meta(root))
    table.check_matches(_meta(toy_dataset_root))  # same bytes elsewhere: location does not matter

    # changed frames (state/action data): rewrite one data file with one value altered
    work = tmp_path / "changed_data"
    shutil.copytree(root, work)
    data_file = next((work / "data").rglob("*.parquet"))
    t = pq.read_table(data_file)
    df = t.to_pandas()
    df.at[5, "action"] = df.at[5, "action"] + 0.01
    t = pa.Table.from_pandas(df, schema=t.schema, preserve_index=False)
    pq.write_table(t, data_file)
    with pytest.raises(ValueError, match="fingerprint"):
        table.check_matches(_meta(work))

    # changed frames (pixels): alter bytes in the middle of the camera video
    work = tmp_path / "changed_video"
    shutil.copytree(root, work)
    video = next((work / "videos" / "observation.images.image").rglob("*.mp4"))
    raw = bytearray(video.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    video.write_bytes(bytes(raw))
    fp = dataset_fingerprint(_meta(work))
    assert fp != table.fingerprint
    with pytest.raises(ValueError, match=r"fingerprint .* re-run `lerobot-world tokenize`"):
        table.check_matches(_meta(work))

    # added frames: a dataset with more episodes under the same repo id
    bigger = make_toy_dataset(tmp_path / "bigger", repo_id=TOY_REPO_ID, episodes_per_task=1, n_tasks=1, image_size=16)
    with pytest.raises(ValueError, match=r"frames .* has \d+ frames"):
        table.check_matches(bigger.meta)


def test_token_table_load_errors(table_and_copy, tmp_path):
    from lerobot_world.tokens.table import WorldTokenTable

    with pytest.raises(ValueError, match="does not exist"):
        WorldTokenTable.load(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"empty is not a world-token table: it lacks meta.json, tokens.parquet"):
        WorldTokenTable.load(empty)
    out, _ = table_and_copy
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "meta.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="format"):
        WorldTokenTable.load(broken)
    t = WorldTokenTable.load(out)
    assert t.tokens.dtype == torch.int64 and t.episode_index.dtype == torch.int64 and t.vocab_size == 4
    assert len(t.tokens) == t.meta["dataset"]["total_frames"] and t.eval_split == 0.2


def test_token_table_stats_hand_computed():
    from lerobot_world.tokens.table import token_stats

    # episode 0 (train): 0 0 1 1 2 ; episode 1 (train): 0 1 2 ; episode 2 (held out): 0 1 1 3
    tokens = torch.tensor([0, 0, 1, 1, 2, 0, 1, 2, 0, 1, 1, 3])
    eps = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    s = token_stats(tokens, eps, [0, 1], [2], vocab_size=5, max_horizon=2)
    assert s["train"]["used_codes"] == 3 and s["train"]["dead_codes"] == 2 and s["heldout"]["used_codes"] == 3
    h1, h2 = s["horizons"]
    # held-out pairs k=1: (0,1) (1,1) (1,3) -> copy 1/3
    assert h1["heldout_pairs"] == 3 and h1["copy"] == pytest.approx(1 / 3)
    # train successors k=1: 0->{0,1,1}: 1 ; 1->{1,2,2}: 2 ; 2 -> none. held-out: 0->1 hit, 1->1 miss(2), 1->3 miss
    assert h1["bigram_top1"] == pytest.approx(1 / 3)
    # top-5 of row 1 = {2, 1}: (1,1) hit, (1,3) miss; row 0 = {1, 0}: (0,1) hit -> 2/3
    assert h1["bigram_top5"] == pytest.approx(2 / 3)
    # k=2 held-out pairs: (0,1) (1,3); train 0->{1,1,2}: 1 ; 1->{2}: 2 -> top1 hits (0,1) only
    assert h2["heldout_pairs"] == 2 and h2["copy"] == 0.0 and h2["bigram_top1"] == pytest.approx(0.5)
    # uniform histogram over 4 codes -> perplexity 4
    u = token_stats(torch.tensor([0, 1, 2, 3]), torch.zeros(4, dtype=torch.long), [0], [], 4, 1)
    assert u["train"]["perplexity"] == pytest.approx(4.0) and u["horizons"][0]["copy"] is None
