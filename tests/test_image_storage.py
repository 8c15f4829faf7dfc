"""`lerobot-world decode-videos`: the image-storage copy is the same dataset, readable by lerobot-train."""

import json
from pathlib import Path

import pytest
import torch

from conftest import TINY_POLICY_FLAGS, TOY_EVAL_SPLIT, TOY_REPO_ID, lerobot_train


@pytest.fixture(scope="module")
def image_copy(toy_dataset_root, tmp_path_factory) -> Path:
    from lerobot_world.cli import main

    out = tmp_path_factory.mktemp("images") / "toy_images"
    main(["decode-videos", f"--dataset.repo_id={TOY_REPO_ID}", f"--dataset.root={toy_dataset_root}",
          f"--output_dir={out}", "--num_workers=0"])
    return out


def test_copy_is_the_same_dataset_in_image_storage(image_copy, toy_dataset, toy_dataset_root):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    copy = LeRobotDataset(f"{TOY_REPO_ID}_images", root=image_copy)
    assert copy.meta.video_keys == [] and sorted(copy.meta.camera_keys) == sorted(toy_dataset.meta.video_keys)
    assert (copy.meta.total_episodes, copy.meta.total_frames) == (toy_dataset.meta.total_episodes, toy_dataset.meta.total_frames)
    assert not (image_copy / "videos").exists()
    # Every frame of the first and last episode, and a sample in between: all columns equal.
    n = len(toy_dataset)
    for i in [*range(0, 12), n // 2, n - 2, n - 1]:
        a, b = toy_dataset[i], copy[i]
        for k in (*toy_dataset.meta.video_keys, "observation.state", "action", "index", "episode_index",
                  "frame_index", "timestamp", "task_index"):
            assert torch.equal(a[k], b[k]), f"frame {i} column {k} differs"
        assert a["task"] == b["task"]
    # Normalisation stats are the source's, byte for byte.
    assert (image_copy / "meta" / "stats.json").read_bytes() == (toy_dataset_root / "meta" / "stats.json").read_bytes()
    from lerobot_world.token_table import dataset_fingerprint

    marker = json.loads((image_copy / "decoded_from.json").read_text())
    assert marker["source_fingerprint"] == dataset_fingerprint(toy_dataset.meta)


def _cli(capsys, *flags) -> tuple[int, str, str]:
    """`lerobot-world decode-videos FLAGS` in process: (exit code, stdout, stderr)."""
    from lerobot_world.cli import main

    capsys.readouterr()
    try:
        main(["decode-videos", *flags])
        rc = 0
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_rerun_is_a_no_op_and_bad_inputs_exit_2(image_copy, toy_dataset_root, tmp_path, capsys):
    src = [f"--dataset.repo_id={TOY_REPO_ID}", f"--dataset.root={toy_dataset_root}"]
    before = sorted(p.stat().st_mtime_ns for p in image_copy.rglob("*") if p.is_file())
    rc, out, err = _cli(capsys, *src, f"--output_dir={image_copy}")
    assert rc == 0 and "already the image-storage copy" in out, err[-2000:]
    assert sorted(p.stat().st_mtime_ns for p in image_copy.rglob("*") if p.is_file()) == before
    # An image dataset as the source: one sentence naming it.
    rc, _, err = _cli(capsys, f"--dataset.repo_id={TOY_REPO_ID}_images", f"--dataset.root={image_copy}",
                      f"--output_dir={tmp_path / 'x'}")
    assert rc == 2 and "already image storage" in err and not (tmp_path / "x").exists()
    # An output path holding something else is refused and left alone.
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    rc, _, err = _cli(capsys, *src, f"--output_dir={other}")
    assert rc == 2 and "not a decode-videos copy" in err
    assert [p.name for p in other.iterdir()] == ["keep.txt"]
    # A dataset root that is not a dataset.
    rc, _, err = _cli(capsys, f"--dataset.repo_id={TOY_REPO_ID}", f"--dataset.root={other}", f"--output_dir={tmp_path / 'y'}")
    assert rc == 2 and "is not a LeRobotDataset" in err
    assert not list(tmp_path.glob(".*tmp_*")), "a failed run left its temp dir behind"


def test_lerobot_train_reads_the_copy(image_copy, toy_world_table, tmp_path):
    """A token table of the copy holds the source table's tokens, and world_vla C trains on the copy."""
    from lerobot_world.cli import main

    table = tmp_path / "table"
    main(["tokenize", f"--dataset.repo_id={TOY_REPO_ID}_images", f"--dataset.root={image_copy}", "--vocab_size=8",
          f"--eval_split={TOY_EVAL_SPLIT}", f"--output_dir={table}", "--num_workers=0"])
    # Same frames -> the same tokens as the source's table (same split, same k-means seed).
    from lerobot_world.token_table import WorldTokenTable

    assert torch.equal(WorldTokenTable.load(toy_world_table).tokens, WorldTokenTable.load(table).tokens)
    r = lerobot_train([
        "--policy.type=world_vla", "--policy.variant=C", f"--policy.world_tokens={table}",
        f"--dataset.repo_id={TOY_REPO_ID}_images", f"--dataset.root={image_copy}", f"--dataset.eval_split={TOY_EVAL_SPLIT}",
        f"--output_dir={tmp_path / 'run'}", "--steps=4", "--batch_size=4", "--log_freq=2", "--save_checkpoint=false",
        "--num_workers=0", "--wandb.enable=false", "--seed=0", *TINY_POLICY_FLAGS,
    ], cwd=tmp_path)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
