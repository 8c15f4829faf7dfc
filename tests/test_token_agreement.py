"""token-agreement: live world tokens vs the table's tokens for the same (replayed) states.

Fast: the per-episode comparison and the summary on hand-made numbers, and every bad-input path
(exit code 2, one sentence, nothing written) on the toy dataset. Slow: real LIBERO demos recorded at
32 px, replayed through LeRobot's env + processors; PNG storage must agree exactly, video is measured.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from eval_sim import token_agreement as ta
from lerobot_world.cli import main as cli_main

# ----------------------------------------------------------------------------------------------------
# Comparison and summary
# ----------------------------------------------------------------------------------------------------


def test_compare_episode_counts_hand_computed():
    table = [1, 2, 3, 3, 5]
    live = [1, 3, 3, 4, 5]  # frame 1: 2->3 (= table[2], adjacent); frame 3: 3->4 (not adjacent)
    decoded = [1, 2, 3, 3, 0]
    rec_states = np.zeros((5, 8), np.float32)
    live_states = rec_states.copy()
    live_states[2, 4] = -0.25
    dec_px = np.zeros((5, 3, 2, 2), np.uint8)
    live_px = dec_px.copy()
    live_px[0, 0, 0, 0] = 12  # frame 0: one pixel off by 12
    live_px[4, 1, 1, 1] = 4
    r = ta.compare_episode(table, live, decoded, live_states, rec_states, live_px, dec_px)
    assert r["frames"] == 5 and r["agree"] == 3 and r["agreement"] == pytest.approx(0.6)
    assert r["mismatches"] == [[1, 2, 3], [3, 3, 4]]
    assert r["mismatch_adjacent"] == 1 and r["first_mismatch"] == 1
    assert r["decoded_agree"] == 4
    assert r["state_max_abs_err"] == pytest.approx(0.25)
    assert r["pixel_mean_abs_diff"] == pytest.approx(16 / 60)  # 5 frames x 12 values
    assert r["pixel_max_abs_diff"] == 12 and r["pixel_identical_frames"] == 3
    # no wrap-around: unsigned pixels must not underflow
    r2 = ta.compare_episode([0], [0], [0], np.zeros((1, 8)), np.zeros((1, 8)), np.zeros((1, 3), np.uint8),
                            np.full((1, 3), 255, np.uint8))
    assert r2["pixel_mean_abs_diff"] == 255 and r2["agreement"] == 1.0 and r2["first_mismatch"] is None
    with pytest.raises(ValueError, match="same length"):
        ta.compare_episode([1, 2], [1], [1, 2], np.zeros((2, 8)), np.zeros((2, 8)), np.zeros((2, 1)), np.zeros((2, 1)))


def _ep(idx, table, live, px=0.0):
    n = len(table)
    r = ta.compare_episode(table, live, table, np.zeros((n, 8)), np.zeros((n, 8)), np.full((n, 4), px),
                           np.zeros((n, 4)))
    return {"episode_index": idx, "task_id": 0, "init_id": idx, "seed": idx, "task": "t"} | r


def test_summary_pools_frames_and_ranks_confusion_pairs():
    e0 = _ep(0, [1, 1, 2, 2], [1, 7, 2, 9], px=1.0)  # (1,7), (2,9)
    e1 = _ep(1, [1, 1, 5, 5, 5, 5], [7, 1, 5, 5, 5, 5], px=3.0)  # (1,7)
    s = ta.summarize([e0, e1])
    assert (s["frames"], s["agree"], s["mismatches"]) == (10, 7, 3)
    assert s["agreement"] == pytest.approx(0.7)
    assert s["top_pairs"][0] == {"table": 1, "live": 7, "count": 2}
    assert s["top_pairs"][1] == {"table": 2, "live": 9, "count": 1} and s["distinct_mismatch_pairs"] == 2
    assert s["pixel_mean_abs_diff"] == pytest.approx((4 * 1.0 + 6 * 3.0) / 10)  # frame-weighted
    assert s["decoded_agreement"] == 1.0 and s["state_max_abs_err"] == 0.0
    assert ta.summarize([e1], top_k=1)["top_pairs"] == [{"table": 1, "live": 7, "count": 1}]


def test_markdown_and_paragraph_show_the_numbers():
    eps = [_ep(0, [1, 1, 2, 2], [1, 7, 2, 2], px=2.0)]
    r = {
        "command": "lerobot-world token-agreement --x", "dataset": {"repo_id": "local/d", "root": "/d"},
        "source": {"suite": "libero_object", "image_size": 32, "init": "fixed", "use_videos": True},
        "table": {"path": "/t", "encoder": "pixel_pca", "vocab_size": 8}, "image_key": "observation.images.image",
        "overall": ta.summarize(eps), "episodes": eps,
    }
    para = ta.summary_paragraph(r)
    assert "3/4 frames (75.0%)" in para and "h264 video" in para and "1->7 x1" in para and "\n" not in para
    md = ta.render_markdown(r)
    assert "| 0 | 0 | 0 | 0 | 4 | 3 | 0.7500 | 1 (0) | 1 | 4 |" in md
    assert "| 1 | 7 | 1 |" in md and para in md


# ----------------------------------------------------------------------------------------------------
# Bad input: exit code 2, one sentence, nothing written (no simulator needed)
# ----------------------------------------------------------------------------------------------------

TOY = "local/toy_libero"


@pytest.fixture(scope="module")
def toy_table(toy_dataset_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ta_tables") / "toy_v8"
    cli_main(["tokenize", f"--dataset.repo_id={TOY}", f"--dataset.root={toy_dataset_root}", f"--output_dir={out}",
              "--vocab_size=8", "--num_workers=0"])
    return out


def _fake_demos_results(root: Path, **change) -> None:
    """A results.json as `lerobot-world demos` writes it, consistent with the dataset at ``root``."""
    from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata

    meta = LeRobotDatasetMetadata(TOY, root=root)
    eps = [{"task_id": 0, "key": e, "init_id": e, "seed": e, "success": True, "steps": int(n), "task": t[0]}
           for e, (n, t) in enumerate(zip(meta.episodes["length"], meta.episodes["tasks"], strict=True))]
    eps.insert(1, {"task_id": 0, "key": 99, "init_id": 99, "seed": 99, "success": False, "steps": 5, "task": "x"})
    for e, fields in change.items():
        eps[int(e.lstrip("e"))].update(fields)
    res = {"command": "lerobot-world demos ...", "config": {"suite": "libero_object", "image_size": 32, "init": "fixed",
                                                            "max_steps": None, "use_videos": True},
           "episodes": eps, "dataset": {"root": str(root), "repo_id": TOY}}
    (root / "results.json").write_text(json.dumps(res))


@pytest.fixture
def demo_like_root(toy_dataset_root, tmp_path) -> Path:
    root = tmp_path / "toy_copy"
    shutil.copytree(toy_dataset_root, root)
    _fake_demos_results(root)
    return root


def _error(capsys, out: Path, *args) -> str:
    with pytest.raises(SystemExit) as e:
        cli_main(["token-agreement", f"--dataset.repo_id={TOY}", f"--output_dir={out}", *args])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*")), "nothing may be written on bad input"
    return err


def test_dataset_without_demos_results_is_refused(toy_dataset_root, toy_table, tmp_path, capsys):
    err = _error(capsys, tmp_path / "o", f"--dataset.root={toy_dataset_root}", f"--world_tokens={toy_table}")
    assert "results.json" in err and "lerobot-world demos" in err and str(toy_dataset_root) in err


def test_episode_out_of_range_is_refused(demo_like_root, toy_table, tmp_path, capsys):
    err = _error(capsys, tmp_path / "o", f"--dataset.root={demo_like_root}", f"--world_tokens={toy_table}",
                 "--episodes=[0,12]")
    assert "--episodes=[0, 12]" in err and "episode 12" in err and "0..11" in err
    err = _error(capsys, tmp_path / "o", f"--dataset.root={demo_like_root}", f"--world_tokens={toy_table}",
                 "--episodes=[]")
    assert "non-empty" in err


def test_table_of_another_dataset_is_refused(demo_like_root, toy_table, tmp_path, capsys):
    other = tmp_path / "other_table"
    shutil.copytree(toy_table, other)
    meta = json.loads((other / "meta.json").read_text())
    meta["fingerprint"] = "0" * 64  # a table made from different frames
    (other / "meta.json").write_text(json.dumps(meta))
    err = _error(capsys, tmp_path / "o", f"--dataset.root={demo_like_root}", f"--world_tokens={other}")
    assert "does not match dataset" in err and "000000000000" in err and "lerobot-world tokenize" in err
    err = _error(capsys, tmp_path / "o", f"--dataset.root={demo_like_root}", f"--world_tokens={tmp_path / 'nope'}")
    assert "nope" in err and "does not exist" in err
    err = _error(capsys, tmp_path / "o", f"--dataset.root={demo_like_root}")
    assert "--world_tokens is required" in err


def test_results_json_of_another_dataset_is_refused(demo_like_root, toy_table, tmp_path, capsys):
    _fake_demos_results(demo_like_root, e3={"steps": 7})  # record 3 = dataset episode 2
    err = _error(capsys, tmp_path / "o", f"--dataset.root={demo_like_root}", f"--world_tokens={toy_table}")
    assert "episode 2 has 7 steps" in err and "results.json" in err


def test_existing_output_dir_is_refused(demo_like_root, toy_table, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(SystemExit) as e:
        cli_main(["token-agreement", f"--dataset.repo_id={TOY}", f"--dataset.root={demo_like_root}",
                  f"--world_tokens={toy_table}", f"--output_dir={out}"])
    assert e.value.code == 2 and "already exists" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


# ----------------------------------------------------------------------------------------------------
# Real LIBERO replay (slow)
# ----------------------------------------------------------------------------------------------------


def _record_and_measure(tmp_path: Path, name: str, use_videos: bool) -> dict:
    root, table, out = tmp_path / f"{name}_demos", tmp_path / f"{name}_table", tmp_path / f"{name}_agreement"
    repo = f"local/ta_{name}"
    cli_main(["demos", "--suite=libero_object", "--task_ids=0", "--episodes_per_task=1", "--image_size=32",
              "--num_workers=1", "--seed=0", "--init_start=0", f"--use_videos={str(use_videos).lower()}",
              f"--output_dir={root}", f"--repo_id={repo}"])
    cli_main(["tokenize", f"--dataset.repo_id={repo}", f"--dataset.root={root}", f"--output_dir={table}",
              "--vocab_size=8", "--eval_split=0", "--num_workers=0"])
    cli_main(["token-agreement", f"--dataset.repo_id={repo}", f"--dataset.root={root}",
                  f"--world_tokens={table}", "--episodes=[0]", f"--output_dir={out}"])
    res = json.loads((out / "results.json").read_text())
    assert (out / "results.md").is_file() and res["episodes"][0]["episode_index"] == 0
    assert res["source"]["use_videos"] is use_videos and res["source"]["image_size"] == 32
    return res


@pytest.mark.slow
def test_replayed_demo_tokens_match_the_table(tmp_path):
    """PNG (lossless) storage: the replay reproduces the recorded states and frames exactly, so every live
    token equals the table's. h264 storage: states still exact, pixels differ, agreement is measured."""
    png = _record_and_measure(tmp_path, "png", use_videos=False)
    o = png["overall"]
    assert o["frames"] > 50 and o["agreement"] == 1.0 and o["mismatches"] == 0, o
    assert o["state_max_abs_err"] < 1e-6 and o["pixel_mean_abs_diff"] == 0.0 and o["decoded_agreement"] == 1.0

    vid = _record_and_measure(tmp_path, "video", use_videos=True)
    o = vid["overall"]
    assert 0.0 <= o["agreement"] <= 1.0 and o["agree"] + o["mismatches"] == o["frames"] > 50
    assert o["state_max_abs_err"] < 1e-6 and o["decoded_agreement"] == 1.0
    assert o["pixel_mean_abs_diff"] > 0.0  # yuv420p chroma subsampling alone makes the decode lossy
