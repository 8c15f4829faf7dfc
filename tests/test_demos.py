"""Scripted-expert demonstrations: CLI validation (fast) and a real recorded LIBERO dataset (slow)."""

import json

import numpy as np
import pytest

from eval_sim import demos


def test_parse_task_ids():
    assert demos.parse_task_ids("0,1", 10, "libero_object") == [0, 1]
    assert demos.parse_task_ids("[2, 3]", 10, "libero_object") == [2, 3]
    assert demos.parse_task_ids("all", 3, "x") == [0, 1, 2]
    with pytest.raises(demos.DemosError, match="0..9"):
        demos.parse_task_ids("10", 10, "libero_object")
    with pytest.raises(demos.DemosError, match="comma-separated"):
        demos.parse_task_ids("a,b", 10, "libero_object")


@pytest.mark.parametrize(
    "flags, match",
    [
        (["--suite=libero_foo"], "libero_foo"),
        (["--init=sometimes"], "sometimes"),
        (["--episodes_per_task=0"], "episodes_per_task"),
        (["--image_size=4"], "image_size"),
        ([], "output_dir"),
    ],
)
def test_bad_flags_are_one_sentence(flags, match, capsys):
    with pytest.raises(SystemExit) as exc:
        demos.main(flags)
    msg = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and msg.startswith("error:") and match in msg and "\n" not in msg


def test_default_init_is_seeded_random_placement():
    """eval-sim evaluates from LIBERO's fixed init states, so demos default to random placements (no init id)."""
    cfg = demos.DemosConfig(episodes_per_task=3, output_dir=None, record=False)
    assert cfg.init == "random"
    assert demos._job_pool(cfg, n_inits=50) == [0, 1, 2]  # seed offsets, not init-state ids
    demos._validate(demos.DemosConfig(init="fixed", output_dir=None, record=False))  # fixed stays available
    cfg.init = "fixed"
    cfg.init_start = 48
    assert demos._job_pool(cfg, n_inits=50) == [48, 49]


def test_existing_output_dir_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        demos.main([f"--output_dir={tmp_path}"])
    assert exc.value.code == 2 and "already exists" in capsys.readouterr().err


def test_summary_and_wilson():
    recs = [{"task_id": 0, "task": "a", "success": s, "steps": 100} for s in (True, True, False, True)]
    s = demos.summarize(recs)
    assert s["per_task"]["0"]["successes"] == 3 and s["per_task"]["0"]["episodes"] == 4
    lo, hi = s["per_task"]["0"]["ci95"]
    assert 0.2 < lo < 0.75 < hi <= 1.0
    assert "3/4" in demos.format_table("libero_object", s)


def test_job_chunks_cover_every_key_once():
    cfg = demos.DemosConfig(episodes_per_task=7, output_dir=None, record=False)
    jobs = demos._chunks(cfg, [0], lambda t: 50, 2)
    keys = sorted(k for _, ks, _ in jobs for k in ks)
    assert keys == list(range(7)) and len(jobs) == 2
    cfg.fill = True
    jobs = demos._chunks(cfg, [0, 1, 2], lambda t: 50, 2)
    assert all(len(ks) == 14 and w == 7 for _, ks, w in jobs)


@pytest.mark.slow
def test_record_one_libero_object_episode(tmp_path):
    """Real LIBERO: the expert's episode is recorded in the HuggingFaceVLA/libero schema, flipped like LeRobot's env."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    out = tmp_path / "demos"
    demos.main([
        "--suite=libero_object", "--task_ids=0", "--episodes_per_task=1", f"--output_dir={out}",
        "--image_size=64", "--num_workers=1", "--repo_id=local/test_demos", "--use_videos=false", "--init=fixed",
    ])
    res = json.loads((out / "results.json").read_text())
    assert res["per_task"]["0"]["successes"] == 1, res
    assert (res["episodes"][0]["init_id"], res["episodes"][0]["seed"]) == (0, 0)
    ds = LeRobotDataset("local/test_demos", root=out)
    assert ds.meta.total_episodes == 1 and ds.fps == 20
    task = res["per_task"]["0"]["task"]
    assert task == "pick up the alphabet soup and place it in the basket"
    item = ds[0]
    assert item["task"] == task
    assert tuple(item["observation.images.image"].shape) == (3, 64, 64)
    assert tuple(item["observation.images.image2"].shape) == (3, 64, 64)
    assert item["observation.state"].shape == (8,) and item["action"].shape == (7,)
    acts = np.stack([ds[i]["action"].numpy() for i in range(len(ds))])
    assert np.abs(acts).max() <= 1.0 and (acts[:, 6] > 0).any() and (acts[:, 6] < 0).any()

    # Orientation: the stored first frame equals LeRobot's env processor output for the same reset,
    # i.e. the raw LIBERO camera image rotated 180 degrees.
    rec = demos.LeRobotLiberoRecorder("libero_object", 0, 64, "fixed", None)
    try:
        rec.env.init_state_id = 0
        raw, _ = rec.env.reset(seed=0)
        frame = rec.frame(raw)
        agent_raw = raw["pixels"]["image"]
        np.testing.assert_array_equal(frame["observation.images.image"], agent_raw[::-1, ::-1])
        stored = (item["observation.images.image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        np.testing.assert_array_equal(stored, frame["observation.images.image"])
        np.testing.assert_allclose(item["observation.state"].numpy(), frame["observation.state"], atol=1e-6)
        # eef z of a Panda above the table and gripper open at the start
        assert 0.0 < frame["observation.state"][2] < 1.5 and frame["observation.state"][6] > 0.02
    finally:
        rec.close()
