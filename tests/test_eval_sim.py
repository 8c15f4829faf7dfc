"""eval_sim: metric functions (fast, hand-computed expectations) and real LIBERO rollouts (slow).

The slow tests need LIBERO importable offline (`python -m eval_sim.libero_assets setup`); they run a
tiny ACT and a tiny world_vla checkpoint through `lerobot-world eval-sim` on libero_object task 0,
check the image orientation against the demo recorder, and the harness against a scripted policy.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from eval_sim import metrics
from lerobot_world.errors import UserError
from lerobot_world.stats import wilson_interval

# ----------------------------------------------------------------------------------------------------
# Metric functions
# ----------------------------------------------------------------------------------------------------


def test_success_within_T():
    succ = [True, True, False, True]
    lens = [50, 150, 280, 280]
    assert metrics.success_within(succ, lens, [49, 50, 100, 150, 280]) == {
        49: 0.0,
        50: 0.25,
        100: 0.25,
        150: 0.5,
        280: 0.75,  # the failure at 280 never counts
    }
    assert metrics.default_success_grid(280) == [100, 200, 280]
    assert metrics.default_success_grid(520) == [100, 200, 300, 400, 500, 520]
    assert metrics.default_success_grid(40) == [10, 20, 30, 40]
    with pytest.raises(ValueError):
        metrics.success_within([True], [1, 2], [5])


def test_action_jerk_is_mean_abs_second_difference_of_arm_dims():
    a = np.zeros((5, 7))
    a[:, 0] = [0, 1, 4, 9, 16]  # quadratic: second difference 2 everywhere
    a[:, 6] = [-1, 1, -1, 1, -1]  # gripper flips are excluded
    # dims 0..5, 3 interior steps: only dim 0 is non-zero -> mean = 2 * 3 / (3 * 6)
    assert metrics.action_jerk(a) == pytest.approx(2 / 6)
    lin = np.tile(np.arange(6.0)[:, None], (1, 7))  # constant velocity change -> zero jerk
    assert metrics.action_jerk(lin) == 0.0
    assert math.isnan(metrics.action_jerk(np.zeros((2, 7))))


def test_chunk_boundary_jumps_split_boundary_and_within_steps():
    a = np.zeros((6, 7))
    a[:, 0] = [0, 0, 0, 3, 3, 3]  # a jump of 3 in dim 0 entering step 3
    starts = [True, False, False, True, False, False]
    cj = metrics.chunk_boundary_jumps(a, starts)
    assert cj["n_boundary"] == 1 and cj["n_within"] == 4  # step 0 has no previous action
    assert cj["boundary"] == pytest.approx(3 / 6)  # mean over 6 arm dims
    assert cj["within"] == 0.0
    no_chunks = metrics.chunk_boundary_jumps(a, [True] + [False] * 5)
    assert no_chunks["n_boundary"] == 0 and math.isnan(no_chunks["boundary"])
    with pytest.raises(ValueError):
        metrics.chunk_boundary_jumps(a, [True] * 5)


def test_world_accuracy_counts_only_pairs_inside_the_episode():
    observed = [5, 6, 7, 7, 2]  # steps 0..4
    predicted = {
        0: [6, 1, 7],  # for steps 1, 2, 3: hit, miss, hit
        3: [2, 9, 9],  # for steps 4, 5, 6: hit, then past the episode end (not counted)
    }
    correct, copy_correct, count = metrics.world_accuracy_counts(observed, predicted, horizon=3)
    assert count.tolist() == [2, 1, 1]
    assert correct.tolist() == [2, 0, 1]
    assert copy_correct.tolist() == [0, 0, 0]  # the observed token changes at every scored pair


def test_world_copy_baseline_is_scored_on_the_models_pairs():
    observed = [5, 5, 7, 7, 7, 2]  # steps 0..5
    predicted = {
        0: [5, 1, 7],  # steps 1, 2, 3: model hit/miss/hit; copy (5 vs 5, 7, 7): hit/miss/miss
        2: [9, 3],  # two predictions only: steps 3, 4: model miss/miss; copy (7 vs 7, 7): hit/hit
        4: [2, 7, 7],  # step 5: model hit, copy (7 vs 2) miss; steps 6, 7 past the end (copy would not exist)
        5: [2, 2, 2],  # the last step: every target is past the end, nothing counted
    }
    correct, copy_correct, count = metrics.world_accuracy_counts(observed, predicted, horizon=3)
    assert count.tolist() == [3, 2, 1]
    assert correct.tolist() == [2, 0, 1]
    assert copy_correct.tolist() == [2, 1, 0]
    # the model beats the copy baseline at k = 3 only, loses at k = 2, ties at k = 1
    # a horizon longer than any prediction leaves the extra k empty
    _, copy4, count4 = metrics.world_accuracy_counts(observed, predicted, horizon=4)
    assert count4.tolist() == [3, 2, 1, 0] and copy4.tolist() == [2, 1, 0, 0]


def test_world_changed_pairs_and_top5():
    observed = [5, 5, 7, 7, 2]  # steps 0..4
    predicted = {0: [5, 7, 1], 2: [7, 3]}
    top5 = {0: [[5, 0, 0, 0, 0], [1, 2, 3, 4, 9], [1, 7, 0, 0, 0]], 2: [[7, 1, 1, 1, 1], [1, 2, 3, 4, 2]]}
    d = metrics.world_accuracy_details(observed, predicted, horizon=3, predicted_top5=top5)
    # pairs from t=0: (5->5 same, hit) (5->7 changed, hit) (5->7 changed, miss; top-5 hit)
    # pairs from t=2: (7->7 same, hit) (7->2 changed, miss; top-5 hit)
    assert d["count"].tolist() == [2, 2, 1]
    assert d["correct"].tolist() == [2, 1, 0]
    assert d["copy_correct"].tolist() == [2, 0, 0]
    assert d["changed_count"].tolist() == [0, 2, 1] and d["changed_correct"].tolist() == [0, 1, 0]
    assert d["top5_correct"].tolist() == [2, 1, 1] and d["changed_top5_correct"].tolist() == [0, 1, 1]
    # changed + unchanged pairs = all pairs; copy hits are exactly the unchanged pairs
    assert (d["changed_count"] + d["copy_correct"] == d["count"]).all()
    no5 = metrics.world_accuracy_details(observed, predicted, horizon=3)
    assert no5["top5_correct"] is None and no5["changed_top5_correct"] is None
    assert no5["changed_correct"].tolist() == [0, 1, 0]
    assert [x.tolist() for x in metrics.world_accuracy_counts(observed, predicted, 3)] == [[2, 1, 0], [2, 0, 0], [2, 2, 1]]


def test_runner_carries_top5_only_with_a_new_prediction():
    """PolicyRunner.act hands the policy's last_world_predicted_top5 to the rollout when a new chunk was predicted."""
    import torch

    from eval_sim.policies import LoadedPolicy, PolicyRunner, StepContext

    class FakeWorldPolicy:
        config = type("Cfg", (), {"type": "world_vla", "future_offset": 2, "predicts_world": True, "device": "cpu"})()
        world_corruption = None
        last_world_observed = last_world_predicted = last_world_predicted_top5 = None

        def __init__(self, top5: bool):
            self.top5, self.calls = top5, 0

        def select_action(self, batch):
            if self.calls % 2 == 0:  # a new chunk every other step
                self.last_world_predicted = torch.tensor([[1, 2]])
                if self.top5:
                    self.last_world_predicted_top5 = torch.tensor([[[1, 0, 3, 4, 5], [2, 7, 6, 5, 4]]])
            self.last_world_observed = torch.tensor([self.calls])
            self.calls += 1
            return torch.zeros(1, 7)

    ctx = StepContext(step=0, envs=None, raw_observation={}, task=["t"], done=np.zeros(1, bool))
    for has_top5 in (True, False):
        ident = lambda x: x  # noqa: E731
        runner = PolicyRunner(LoadedPolicy(FakeWorldPolicy(has_top5), ident, ident, ident, ident), env_cfg=None)
        _, _, obs, pred = runner.act({}, ctx)
        assert pred.tolist() == [[1, 2]] and obs.tolist() == [0]
        top5 = runner.last_predicted_top5
        assert (top5.shape == (1, 2, 5) and top5[0, 1].tolist() == [2, 7, 6, 5, 4]) if has_top5 else top5 is None
        _, _, _, pred = runner.act({}, ctx)  # no new chunk: no prediction, no top-5
        assert pred is None and runner.last_predicted_top5 is None


def test_aggregate_episodes_pools_counts_and_intervals():
    eps = [
        {"success": True, "length": 100, "goal_fraction": 1.0, "jerk": 0.1,
         "chunk_jump": {"boundary": 0.4, "within": 0.1, "n_boundary": 1, "n_within": 9},
         "world": {"correct": [3, 1], "copy_correct": [4, 2], "count": [4, 2]}},
        {"success": False, "length": 280, "goal_fraction": 0.5, "jerk": 0.3,
         "chunk_jump": {"boundary": 0.1, "within": 0.2, "n_boundary": 3, "n_within": 1},
         "world": {"correct": [1, 0], "copy_correct": [1, 1], "count": [4, 2]}},
    ]
    row = metrics.aggregate_episodes(eps, [100, 280], horizon=2)
    assert row["n_success"] == 1 and row["success_rate"] == 0.5
    assert row["ci95"] == pytest.approx(list(wilson_interval(1, 2)))
    assert row["success_within"] == {"100": 0.5, "280": 0.5}
    assert row["mean_length"] == 190 and row["mean_length_success"] == 100
    assert row["goal_fraction"] == 0.75 and row["jerk"] == pytest.approx(0.2)
    assert row["chunk_jump_boundary"] == pytest.approx((0.4 * 1 + 0.1 * 3) / 4)
    assert row["chunk_jump_within"] == pytest.approx((0.1 * 9 + 0.2 * 1) / 10)
    assert row["world_accuracy"] == {"1": 0.5, "2": 0.25}
    assert row["world_copy_baseline"] == {"1": 5 / 8, "2": 0.75}  # pooled pairs, not a mean of episode ratios
    assert row["world_pairs"] == {"1": 8, "2": 4}
    # records without changed-pair / top-5 fields (older results.json): those rates are None, not partial
    assert row["world_changed_accuracy"] == {"1": None, "2": None} and row["world_top5_accuracy"] == {"1": None, "2": None}
    assert row["world_changed_pairs"] == {"1": None, "2": None}
    eps[0]["world"].update(changed_count=[0, 0], changed_correct=[0, 0], top5_correct=[4, 2], changed_top5_correct=[0, 0])
    eps[1]["world"].update(changed_count=[3, 1], changed_correct=[1, 0], top5_correct=[2, 1], changed_top5_correct=[2, 1])
    row = metrics.aggregate_episodes(eps, [100, 280], horizon=2)
    assert row["world_changed_accuracy"] == {"1": 1 / 3, "2": 0.0} and row["world_changed_pairs"] == {"1": 3, "2": 1}
    assert row["world_top5_accuracy"] == {"1": 0.75, "2": 0.75}
    assert row["world_changed_top5_accuracy"] == {"1": 2 / 3, "2": 1.0}
    eps[1]["world"]["top5_correct"] = None  # a policy without top-5: no top-5 rate, changed accuracy stays
    row = metrics.aggregate_episodes(eps, [100, 280], horizon=2)
    assert row["world_top5_accuracy"] == {"1": None, "2": None} and row["world_changed_accuracy"]["1"] == 1 / 3


def test_aggregate_world_copy_baseline_edge_cases():
    base = {"success": False, "length": 10, "goal_fraction": None, "jerk": None, "chunk_jump": None}
    # an episode too short for k = 2 contributes no pairs there; episodes without world records are skipped
    eps = [{**base, "world": {"correct": [1, 0], "copy_correct": [2, 0], "count": [2, 0]}},
           {**base, "world": None}]
    row = metrics.aggregate_episodes(eps, [10], horizon=2)
    assert row["world_copy_baseline"] == {"1": 1.0, "2": None} and row["world_accuracy"] == {"1": 0.5, "2": None}
    # results written before the copy baseline existed: accuracy as before, no partial copy baseline
    old = [{**base, "world": {"correct": [1, 1], "count": [2, 2]}},
           {**base, "world": {"correct": [0, 1], "copy_correct": [2, 2], "count": [2, 2]}}]
    row = metrics.aggregate_episodes(old, [10], horizon=2)
    assert row["world_accuracy"] == {"1": 0.25, "2": 0.5} and row["world_copy_baseline"] == {"1": None, "2": None}


def _fake_results(episodes: list[dict], horizon: int) -> dict:
    """A results.json as summarize() lays it out, from hand-made episode records (no simulator)."""
    from eval_sim.rollout import Timing

    grid = [10]
    per_task = []
    for tid in sorted({e["task_id"] for e in episodes}):
        eps = [e for e in episodes if e["task_id"] == tid]
        per_task.append({"suite": "libero_object", "task_id": tid, "task": f"task {tid}",
                         **metrics.aggregate_episodes(eps, grid, horizon)})
    overall = metrics.aggregate_episodes(episodes, grid, horizon)
    return {
        "command": "lerobot-world eval-sim ...", "created": "2025-01-01T00:00:00", "wall_s": 1.0, "seed": 0,
        "init_state_start": 0, "n_episodes_per_task": 1, "n_episodes": len(episodes), "corruption": "none",
        "policy": {"type": "world_vla", "path": "ckpt", "variant": "C"},
        "env": {"suites": ["libero_object"], "max_steps": 10, "observation_size": [64, 64]},
        "metric_definitions": {"world_accuracy": "...", "world_copy_baseline": "..."},
        "success_grid": grid, "overall": overall, "per_task": per_task,
        "per_suite": {"libero_object": {"n_tasks": len(per_task), **overall}},
        "episodes": episodes, "throughput": Timing().as_dict(),
    }


def test_results_md_shows_the_copy_baseline_beside_world_accuracy():
    from eval_sim.results_md import render_markdown

    def ep(tid, correct, copy, count, changed=None):
        w = {"correct": correct, "copy_correct": copy, "count": count}
        if changed:
            w.update(changed)
        return {"suite": "libero_object", "task_id": tid, "episode_index": 0, "init_state_id": 0, "seed": 0,
                "success": False, "length": 10, "goal_predicates": [], "goal_fraction": None, "jerk": None,
                "chunk_jump": None, "video": None, "world": w}

    r = _fake_results([ep(0, [1, 0], [4, 3], [4, 4]), ep(1, [2, 2], [0, 1], [4, 4])], horizon=2)
    assert r["per_task"][0]["world_copy_baseline"] == {"1": 1.0, "2": 0.75}
    assert r["overall"]["world_copy_baseline"] == {"1": 0.5, "2": 0.5}
    md = render_markdown(r)
    assert "| libero_object #0 | model | 25.0% | 0.0% |" in md
    assert "| libero_object #0 | copy | 100.0% | 75.0% |" in md
    assert "| libero_object #1 | copy | 0.0% | 25.0% |" in md
    assert "| **all** | model | 37.5% | 25.0% |" in md and "| **all** | copy | 50.0% | 50.0% |" in md
    assert "| pairs | | 8 | 8 |" in md
    # records from before the changed-pair / top-5 fields: "—", not a partial number
    assert "| **all** | changed: model | — | — |" in md and "| **all** | model top-5 | — | — |" in md
    assert "| changed pairs | | — | — |" in md
    # a results dict from before the copy baseline renders with empty copy cells
    for a in (*r["per_task"], r["overall"]):
        del a["world_copy_baseline"]
    assert "| **all** | copy | — | — |" in render_markdown(r)
    new = {"changed_count": [0, 1], "changed_correct": [0, 0], "top5_correct": [2, 1], "changed_top5_correct": [0, 1]}
    new1 = {"changed_count": [4, 3], "changed_correct": [2, 2], "top5_correct": [3, 3], "changed_top5_correct": [3, 3]}
    md = render_markdown(_fake_results([ep(0, [1, 0], [4, 3], [4, 4], new), ep(1, [2, 2], [0, 1], [4, 4], new1)], 2))
    assert "| **all** | changed: model | 50.0% | 50.0% |" in md and "| changed pairs | | 4 | 4 |" in md
    assert "| **all** | model top-5 | 62.5% | 50.0% |" in md and "| **all** | changed: model top-5 | 75.0% | 100.0% |" in md
    assert "world_changed_accuracy:" in md  # its definition


def test_video_frames_roundtrip(tmp_path):
    from eval_sim.video import VideoWriter, compose_frame, read_frames

    agent = np.zeros((32, 32, 3), np.uint8)
    agent[:, :16] = 255
    wrist = np.full((32, 32, 3), 128, np.uint8)
    frame = compose_frame(agent, wrist, [("step 3/10", (255, 255, 255)), ("SUCCESS", (90, 255, 90))])
    assert frame.shape[0] % 16 == 0 and frame.shape[1] % 16 == 0
    w = VideoWriter(tmp_path / "v.mp4", fps=10)
    for _ in range(5):
        w.append(frame)
    w.close()
    back = read_frames(tmp_path / "v.mp4")
    assert back.shape == (5, *frame.shape)
    # the agent view's white left half survives encoding (upscaled 7x under a 40 px banner)
    assert back[2, 60:200, 10:100].mean() > 200 and back[2, 60:200, 130:200].mean() < 30


def test_bad_cli_input_is_one_clear_sentence(tmp_path, capsys):
    from eval_sim.evaluate import main

    def error(argv) -> str:
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            main(argv)
        err = capsys.readouterr().err.strip()
        assert e.value.code == 2 and err.startswith("error: ") and "\n" not in err, err
        return err

    err = error([f"--policy.path={tmp_path / 'nope'}", f"--output_dir={tmp_path / 'o'}"])
    assert "does not exist" in err and "nope" in err
    (tmp_path / "empty").mkdir()
    assert "no config.json" in error([f"--policy.path={tmp_path / 'empty'}", f"--output_dir={tmp_path / 'o'}"])
    assert "--policy.path" in error([f"--output_dir={tmp_path / 'o'}"])
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------------------------------
# Training init states: a checkpoint is never scored on the init states its demos started from
# ----------------------------------------------------------------------------------------------------


def _demo_record(task_id, init_id, success, seed=0):
    return {"task_id": task_id, "key": 0, "init_id": init_id, "seed": seed, "success": success, "steps": 10,
            "seconds": 1.0, "attempts": 0, "task": f"task {task_id}"}


def _fake_demos_dataset(root: Path, episodes: list[dict], suite="libero_object", init="fixed", n_saved=None) -> Path:
    """A dataset root as `lerobot-world demos` leaves it, as far as the check reads it: results.json + meta/info.json."""
    (root / "meta").mkdir(parents=True)
    saved = sum(r["success"] for r in episodes) if n_saved is None else n_saved
    (root / "meta" / "info.json").write_text(json.dumps({"total_episodes": saved, "fps": 20}))
    (root / "results.json").write_text(json.dumps({
        "command": "lerobot-world demos ...", "config": {"suite": suite, "init": init, "image_size": 32, "record": True},
        "suite": suite, "physics_only": False, "episodes": episodes,
        "dataset": {"root": str(root), "repo_id": "local/fake", "episodes": saved},
    }))
    return root


def _fake_checkpoint(ckpt: Path, dataset: dict) -> Path:
    """A lerobot-train pretrained_model dir: a loadable (ACT) config.json and LeRobot's train_config.json."""
    ckpt.mkdir(parents=True)
    (ckpt / "config.json").write_text(json.dumps({"type": "act"}))
    (ckpt / "train_config.json").write_text(json.dumps({"dataset": dataset, "policy": {"type": "act"}, "steps": 2}))
    return ckpt


def test_training_init_states_are_the_saved_fixed_init_episodes(tmp_path):
    from eval_sim.training_conditions import find_overlap, find_training_init_states, results_record

    root = _fake_demos_dataset(tmp_path / "ds", [
        _demo_record(0, 0, True), _demo_record(0, 1, False), _demo_record(0, 2, True),  # init 1 failed: not saved
        _demo_record(3, 5, True), _demo_record(3, None, True, seed=7),  # a random placement has no init state
    ])
    run = tmp_path / "run" / "checkpoints" / "last"
    ckpt = _fake_checkpoint(run / "pretrained_model", {"repo_id": "local/fake", "root": str(root)})
    tr = find_training_init_states(ckpt)
    assert tr.known and tr.reason is None and tr.source == str((root / "results.json").resolve())
    assert tr.states == {("libero_object", 0, 0), ("libero_object", 0, 2), ("libero_object", 3, 5)}
    assert find_training_init_states(run) == tr  # a checkpoint step dir, as --policy.path accepts it
    # eval-sim's episodes e = 0..n-1 start from init_state_start + e
    assert find_overlap(tr, {"libero_object": [0, 3]}, 0, 3) == [
        {"suite": "libero_object", "task_id": 0, "init_states": [0, 2]}]
    assert find_overlap(tr, {"libero_object": [0, 3]}, 2, 4) == [
        {"suite": "libero_object", "task_id": 0, "init_states": [2]},
        {"suite": "libero_object", "task_id": 3, "init_states": [5]}]
    assert find_overlap(tr, {"libero_object": [0, 3]}, 6, 10) == []
    assert find_overlap(tr, {"libero_spatial": [0]}, 0, 10) == []  # same task id, another suite
    rec = results_record(tr, [], allowed=False)
    assert rec == {"known": True, "source": tr.source, "n_training_init_states": 3, "overlap": [],
                   "allow_training_init_states": False}

    random_only = _fake_demos_dataset(tmp_path / "ds_random", [_demo_record(0, None, True, seed=s) for s in range(3)],
                                      init="random")
    tr = find_training_init_states(_fake_checkpoint(tmp_path / "ck_random", {"repo_id": "x/y", "root": str(random_only)}))
    assert tr.known and tr.states == frozenset()
    assert find_overlap(tr, {"libero_object": [0]}, 0, 50) == []


def test_training_init_states_unknown_without_a_demos_record(tmp_path, monkeypatch):
    from eval_sim.training_conditions import find_training_init_states, results_record

    def reason(ckpt_dir, dataset):
        tr = find_training_init_states(_fake_checkpoint(tmp_path / ckpt_dir, dataset))
        assert not tr.known and tr.states == frozenset()
        assert results_record(tr, [], allowed=False) == {"known": False, "reason": tr.reason}
        return tr.reason

    no_tc = tmp_path / "no_train_config"
    no_tc.mkdir()
    tr = find_training_init_states(no_tc)
    assert not tr.known and "train_config.json" in tr.reason
    assert "does not exist here" in reason("c1", {"repo_id": "local/gone", "root": str(tmp_path / "gone")})
    plain = tmp_path / "plain_ds"  # a LeRobot dataset not recorded by `demos`
    (plain / "meta").mkdir(parents=True)
    assert "no results.json" in reason("c2", {"repo_id": "local/plain", "root": str(plain)})
    monkeypatch.setattr("lerobot.utils.constants.HF_LEROBOT_HOME", tmp_path / "hf_home")
    assert "HuggingFaceVLA/libero" in reason("c3", {"repo_id": "HuggingFaceVLA/libero", "root": None})
    # a results.json that does not describe the dataset next to it (4 saved episodes listed, 3 in the dataset)
    stale = _fake_demos_dataset(tmp_path / "stale", [_demo_record(0, i, True) for i in range(4)], n_saved=3)
    assert "lists 4 saved episodes but the dataset has 3" in reason("c4", {"repo_id": "l/s", "root": str(stale)})
    (tmp_path / "c5_ds").mkdir()
    (tmp_path / "c5_ds" / "results.json").write_text("{not json")
    assert "not the results.json" in reason("c5", {"repo_id": "l/b", "root": str(tmp_path / "c5_ds")})
    # LeRobot's default root for a local repo id, when dataset.root is not set
    _fake_demos_dataset(tmp_path / "hf_home" / "local" / "home_ds", [_demo_record(1, 4, True)])
    tr = find_training_init_states(_fake_checkpoint(tmp_path / "c6", {"repo_id": "local/home_ds", "root": None}))
    assert tr.known and tr.states == {("libero_object", 1, 4)}


def test_overlapping_request_is_refused_in_one_sentence_unless_allowed(tmp_path):
    from eval_sim.training_conditions import (
        TrainingInitStatesError,
        check_training_init_states,
        describe,
        find_training_init_states,
        results_record,
    )

    root = _fake_demos_dataset(tmp_path / "ds", [_demo_record(0, i, True) for i in range(3)] + [_demo_record(2, 7, True)])
    ckpt = str(_fake_checkpoint(tmp_path / "ck", {"repo_id": "local/fake", "root": str(root)}))
    tr = find_training_init_states(ckpt)
    requested = {"libero_object": [0, 1, 2]}
    with pytest.raises(TrainingInitStatesError) as e:
        check_training_init_states(tr, requested, 0, 10, allow=False, policy_path=ckpt)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("--policy.path=") and msg.endswith(".")
    assert "libero_object task 0 init states 0-2; libero_object task 2 init state 7" in msg
    assert "--allow_training_init_states=true" in msg and ckpt in msg
    assert "--init_state_start=8" in msg  # the first start whose 10 init states avoid 0-2 and 7
    assert isinstance(e.value, UserError)  # the CLI's one sentence and exit code 2
    assert check_training_init_states(tr, requested, 3, 4, allow=False, policy_path=ckpt) == []
    overlap = check_training_init_states(tr, requested, 0, 2, allow=True, policy_path=ckpt)
    assert overlap == [{"suite": "libero_object", "task_id": 0, "init_states": [0, 1]}]
    rec = results_record(tr, overlap, allowed=True)
    assert rec["known"] and rec["overlap"] == overlap and rec["allow_training_init_states"] is True
    assert "ON TRAINING INIT STATES (libero_object task 0 init states 0-1" in describe(rec)
    # no fixed start of 45 episodes avoids them: the message still names the flags
    with pytest.raises(TrainingInitStatesError) as e:
        check_training_init_states(tr, requested, 0, 45, allow=False, policy_path=ckpt)
    assert "e.g." not in str(e.value) and "--allow_training_init_states=true" in str(e.value)
    # unknown training init states are never an error
    unknown = find_training_init_states(tmp_path)
    assert check_training_init_states(unknown, requested, 0, 10, allow=False, policy_path=str(tmp_path)) == []


def test_eval_sim_cli_refuses_training_init_states_before_building_anything(tmp_path, capsys, monkeypatch):
    """Exit code 2 and one sentence, before the policy is loaded or any env or output exists; with the flag
    (or an unknown record) the run goes on to load the policy (stopped there by a stand-in)."""
    import eval_sim.evaluate as ev

    root = _fake_demos_dataset(tmp_path / "ds", [_demo_record(0, i, True) for i in range(3)])
    ckpt = _fake_checkpoint(tmp_path / "ck", {"repo_id": "local/fake", "root": str(root)})
    built = []
    monkeypatch.setattr("lerobot.envs.make_env", lambda *a, **k: built.append(a) or 1 / 0)

    class Reached(Exception):
        pass

    def stand_in(path, *a, **k):
        raise Reached(path)

    monkeypatch.setattr(ev, "load_policy", stand_in)
    args = [f"--policy.path={ckpt}", "--env.task=libero_object", "--env.task_ids=[0]", "--n_episodes_per_task=2",
            f"--output_dir={tmp_path / 'out'}", "--device=cpu"]
    with pytest.raises(SystemExit) as e:
        ev.main(args)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2
    assert err.startswith("error: ") and "\n" not in err
    assert "libero_object task 0 init states 0-1" in err and "--allow_training_init_states=true" in err
    assert not (tmp_path / "out").exists() and not [p for p in tmp_path.iterdir() if ".partial-" in p.name]
    assert not built

    with pytest.raises(Reached):
        ev.main([*args, "--allow_training_init_states=true"])
    assert "ON TRAINING INIT STATES (libero_object task 0 init states 0-1" in capsys.readouterr().out
    with pytest.raises(Reached):
        ev.main([*args[:-3], "--init_state_start=3", *args[-3:]])  # disjoint init states: no flag needed
    assert "no overlap with the 3 fixed init states" in capsys.readouterr().out
    (ckpt / "train_config.json").unlink()
    with pytest.raises(Reached):
        ev.main(args)
    assert "training init states: unknown, not checked" in capsys.readouterr().out
    assert not (tmp_path / "out").exists() and not built


def test_results_record_training_init_states_in_json_and_md():
    from eval_sim.evaluate import _render_markdown, _with_training_record

    ep = {"suite": "libero_object", "task_id": 0, "episode_index": 0, "init_state_id": 0, "seed": 0, "success": False,
          "length": 10, "goal_predicates": [], "goal_fraction": None, "jerk": None, "chunk_jump": None, "video": None,
          "world": None}
    rec = {"known": False, "reason": "the training dataset /x has no results.json"}
    r = _with_training_record(_fake_results([ep], horizon=1), rec)
    keys = list(r)
    assert r["training_init_states"] == rec and keys.index("training_init_states") == keys.index("init_state_start") + 1
    lines = _render_markdown(r).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("- episodes:"))
    assert lines[at + 1] == "- training init states: unknown, not checked: " + rec["reason"]


# ----------------------------------------------------------------------------------------------------
def test_runner_hands_the_env_float32_actions_from_a_bf16_policy():
    """A use_amp checkpoint acts under bf16 autocast: its bf16 action reaches the env as float32 numpy."""
    import torch

    from eval_sim.policies import LoadedPolicy, PolicyRunner, StepContext

    class Bf16Policy:
        config = type("Cfg", (), {"type": "act", "use_amp": True, "device": "cpu"})()

        def select_action(self, batch):
            assert torch.is_autocast_enabled("cpu"), "the evaluators run a use_amp policy under autocast"
            return torch.tensor([[0.5, -0.25, 1.0, 0.0, 0.0, 0.0, -1.0]], dtype=torch.bfloat16)

    ident = lambda x: x  # noqa: E731
    runner = PolicyRunner(LoadedPolicy(Bf16Policy(), ident, ident, ident, ident), env_cfg=None)
    ctx = StepContext(step=0, envs=None, raw_observation={}, task=["t"], done=np.zeros(1, bool))
    action, *_ = runner.act({}, ctx)
    assert action.dtype == np.float32 and action.tolist() == [[0.5, -0.25, 1.0, 0.0, 0.0, 0.0, -1.0]]


# Real LIBERO rollouts (slow): tiny checkpoints trained by lerobot-train on a LIBERO-schema dataset
# ----------------------------------------------------------------------------------------------------

SIM_REPO_ID = "local/evs_libero_object_t0"
SIM_IMAGE = 32
SIM_STEPS = 25


@pytest.fixture(scope="module")
def libero_task0_text() -> str:
    from eval_sim.libero_env import prepare_libero

    prepare_libero()
    from libero.libero import benchmark

    return benchmark.get_benchmark_dict()["libero_object"]().get_task(0).language


@pytest.fixture(scope="module")
def sim_dataset_root(tmp_path_factory, libero_task0_text) -> Path:
    """Two toy episodes in the LIBERO schema whose task string is libero_object task 0's instruction
    (world_vla refuses instructions it was not trained on; ACT ignores the task)."""
    from lerobot.configs.video import RGBEncoderConfig
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from lerobot_world.dataset import libero_features
    from lerobot_world.toy_dataset import toy_episode

    root = tmp_path_factory.mktemp("evs_sim") / "ds"
    ds = LeRobotDataset.create(
        repo_id=SIM_REPO_ID, fps=20, features=libero_features(SIM_IMAGE), root=root, robot_type="panda",
        use_videos=True, rgb_encoder=RGBEncoderConfig(vcodec="h264", preset="ultrafast", crf=18, g=2),
    )
    rng = np.random.default_rng(0)
    for _ in range(4):
        for frame in toy_episode(0, rng, SIM_IMAGE):
            ds.add_frame({**frame, "task": libero_task0_text})
        ds.save_episode()
    ds.finalize()
    return root


def _train(policy_args: list[str], root: Path, out: Path, world: bool) -> Path:
    from conftest import TINY_POLICY_FLAGS, lerobot_train

    tiny = TINY_POLICY_FLAGS if world else [f for f in TINY_POLICY_FLAGS if "world" not in f and "future_offset" not in f]
    result = lerobot_train(
        [*policy_args, f"--dataset.repo_id={SIM_REPO_ID}", f"--dataset.root={root}", f"--output_dir={out}",
         "--steps=2", "--batch_size=4", "--save_freq=2", "--num_workers=0", "--wandb.enable=false", "--seed=0", *tiny],
        cwd=out.parent,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return out / "checkpoints" / "last" / "pretrained_model"


@pytest.fixture(scope="module")
def act_checkpoint(sim_dataset_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("evs_act") / "run"
    return _train(["--policy.type=act", "--policy.pretrained_backbone_weights=null"], sim_dataset_root, out, world=False)


@pytest.fixture(scope="module")
def world_vla_checkpoint(sim_dataset_root, tmp_path_factory) -> Path:
    from lerobot_world.cli import main as cli

    base = tmp_path_factory.mktemp("evs_wv")
    table = base / "table"
    cli(["tokenize", f"--dataset.repo_id={SIM_REPO_ID}", f"--dataset.root={sim_dataset_root}", "--vocab_size=8",
         "--eval_split=0.25", f"--output_dir={table}", "--num_workers=0"])
    return _train(["--policy.type=world_vla", "--policy.variant=C", f"--policy.world_tokens={table}",
                   "--dataset.eval_split=0.25"], sim_dataset_root, base / "run", world=True)


def _eval_sim(ckpt: Path, out: Path, *extra: str) -> dict:
    from lerobot_world.cli import main as cli

    cli(["eval-sim", f"--policy.path={ckpt}", "--env.task=libero_object", "--env.task_ids=[0]",
         "--n_episodes_per_task=1", f"--max_steps={SIM_STEPS}", f"--output_dir={out}", "--device=cpu", *extra])
    return json.loads((out / "results.json").read_text())


def _check_common_outputs(r: dict, out: Path, policy_type: str):
    from eval_sim.video import read_frames

    assert sorted(p.name for p in out.iterdir()) == ["results.json", "results.md", "videos"]
    assert not [p for p in out.parent.iterdir() if ".partial-" in p.name], "a temp dir was left behind"
    assert r["policy"]["type"] == policy_type and r["command"].startswith("lerobot-world eval-sim --policy.path=")
    assert r["env"]["observation_size"] == [SIM_IMAGE, SIM_IMAGE]  # the policy's training image size
    (ep,) = r["episodes"]
    assert (ep["suite"], ep["task_id"], ep["episode_index"], ep["init_state_id"], ep["seed"]) == ("libero_object", 0, 0, 0, r["seed"])
    assert ep["success"] is False and ep["length"] == SIM_STEPS  # 2 training steps cannot solve the task
    assert ep["goal_predicates"] == [{"predicate": "(in alphabet_soup_1 basket_1_contain_region)", "satisfied": False}]
    assert ep["goal_fraction"] == 0.0 and ep["jerk"] is not None and ep["jerk"] >= 0
    # chunk_size = n_action_steps = 10: chunks start at steps 0, 10, 20 -> boundary jumps at 10 and 20
    assert ep["n_chunks"] == 3 and ep["chunk_jump"]["n_boundary"] == 2 and ep["chunk_jump"]["n_within"] == SIM_STEPS - 3
    task = r["per_task"][0]
    assert task["n_episodes"] == 1 and task["ci95"] == pytest.approx(list(wilson_interval(0, 1)))
    assert set(task["success_within"]) == {str(t) for t in metrics.default_success_grid(SIM_STEPS)}
    th = r["throughput"]
    assert th["env_steps"] == SIM_STEPS and th["env_s"] > 0 and th["env_steps_per_s"] > 0
    md = (out / "results.md").read_text()
    assert "95% CI (Wilson)" in md and "alphabet soup" in md and ep["video"] in md
    frames = read_frames(out / ep["video"])
    assert frames.shape[0] == SIM_STEPS + 1  # one frame per policy step plus the final state
    assert frames.shape[1] >= 224 and frames.shape[2] >= 2 * 224 and frames.std() > 5
    return ep


@pytest.mark.slow
def test_act_checkpoint_through_eval_sim(act_checkpoint, tmp_path, capsys):
    out = tmp_path / "act_eval"
    r = _eval_sim(act_checkpoint, out)
    ep = _check_common_outputs(r, out, "act")
    assert ep["world"] is None and "world_accuracy" not in r["overall"]
    # trained on a toy dataset (no `demos` results.json): eval-sim ran and says it could not check
    assert r["training_init_states"]["known"] is False and "no results.json" in r["training_init_states"]["reason"]
    assert "training init states: unknown, not checked" in (out / "results.md").read_text()
    # a world corruption on a policy without world input is refused, and nothing is written
    from eval_sim.evaluate import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([f"--policy.path={act_checkpoint}", "--env.task=libero_object", "--env.task_ids=[0]",
              "--corruption=shuffle", f"--output_dir={tmp_path / 'no'}"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "world_vla" in err and "'act'" in err
    assert not (tmp_path / "no").exists()


@pytest.mark.slow
def test_world_vla_checkpoint_through_eval_sim(world_vla_checkpoint, tmp_path):
    out = tmp_path / "wv_eval"
    r = _eval_sim(world_vla_checkpoint, out, "--corruption=mask")
    ep = _check_common_outputs(r, out, "world_vla")
    assert r["corruption"] == "mask" and r["policy"]["variant"] == "C" and r["policy"]["future_offset"] == 3
    # predictions at steps 0, 10, 20 for t+1..t+3; all inside the 25 steps -> 3 pairs per k
    assert ep["world"]["count"] == [3, 3, 3]
    assert all(0 <= c <= 3 for c in ep["world"]["copy_correct"]) and len(ep["world"]["copy_correct"]) == 3
    acc = r["overall"]["world_accuracy"]
    assert set(acc) == {"1", "2", "3"} and all(0.0 <= v <= 1.0 for v in acc.values())
    assert set(r["overall"]["world_copy_baseline"]) == {"1", "2", "3"}
    assert "Closed-loop world accuracy" in (out / "results.md").read_text()


@pytest.mark.slow
def test_async_envs_and_two_suites_give_the_same_episodes(world_vla_checkpoint, act_checkpoint, tmp_path):
    """LeRobot's async vector env (one process per env) gives exactly the episodes of the sync one, and a
    comma-separated --env.task evaluates each suite's tasks in one run with the same per-suite results
    (ACT there: world_vla's task embedding knows only the instruction it was trained on)."""
    from lerobot_world.cli import main as cli

    common = ["--n_episodes_per_task=2", "--batch_size=2", "--video=false"]
    sync = _eval_sim(world_vla_checkpoint, tmp_path / "sync", *common, "--use_async_envs=false")
    asy = _eval_sim(world_vla_checkpoint, tmp_path / "async", *common, "--use_async_envs=true")
    keys = ("init_state_id", "seed", "success", "length", "jerk", "world", "chunk_jump")
    assert [[e[k] for k in keys] for e in sync["episodes"]] == [[e[k] for k in keys] for e in asy["episodes"]]
    assert len(sync["episodes"]) == 2 and sync["episodes"][0]["jerk"] != sync["episodes"][1]["jerk"]

    one = _eval_sim(act_checkpoint, tmp_path / "act_object", *common)
    out = tmp_path / "two_suites"
    cli(["eval-sim", f"--policy.path={act_checkpoint}", "--env.task=libero_object,libero_spatial",
         "--env.task_ids=[0]", f"--max_steps={SIM_STEPS}", f"--output_dir={out}", "--device=cpu", *common])
    both = json.loads((out / "results.json").read_text())
    assert both["env"]["suites"] == ["libero_object", "libero_spatial"]
    assert [(t["suite"], t["task_id"]) for t in both["per_task"]] == [("libero_object", 0), ("libero_spatial", 0)]
    obj = [e for e in both["episodes"] if e["suite"] == "libero_object"]
    assert [[e[k] for k in keys] for e in obj] == [[e[k] for k in keys] for e in one["episodes"]]
    assert len([e for e in both["episodes"] if e["suite"] == "libero_spatial"]) == 2


@pytest.mark.slow
def test_bad_suite_and_task_id_are_one_sentence(act_checkpoint, tmp_path, capsys):
    from eval_sim.evaluate import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([f"--policy.path={act_checkpoint}", "--env.task=libero_nope", f"--output_dir={tmp_path / 'a'}"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "unknown LIBERO suite" in err and "libero_object" in err
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([f"--policy.path={act_checkpoint}", "--env.task=libero_object", "--env.task_ids=[10]",
              f"--output_dir={tmp_path / 'b'}"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "10" in err and "0..9" in err
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([f"--policy.path={act_checkpoint}", "--env.task=libero_object", "--env.task_ids=[0]",
              "--init_state_start=45", "--n_episodes_per_task=10", f"--output_dir={tmp_path / 'c'}"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "init states" in err
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_scripted_expert_as_policy_reproduces_its_own_rollouts(tmp_path):
    """Harness validity (issue 5, Must-show 3): the scripted expert run *as a policy* through eval_sim
    (rendered LeRobot vector env, fixed init states, LeRobot processors) gets exactly the outcome and the
    episode length that the expert's own physics-only rollouts get from the same init states and seeds."""
    from lerobot.envs.configs import LiberoEnv

    from eval_sim.evaluate import EvalSimConfig, evaluate
    from eval_sim.expert_rollout import measure
    from eval_sim.policies import ScriptedExpertPolicy

    ids = [0, 1]
    cfg = EvalSimConfig(
        env=LiberoEnv(task="libero_object", task_ids=[0], observation_height=32, observation_width=32),
        n_episodes_per_task=len(ids), output_dir=tmp_path / "expert", seed=1000, max_videos_per_task=0,
    )
    r = evaluate(cfg, policy=ScriptedExpertPolicy())
    own = measure("libero_object", 0, ids, max_steps=r["env"]["max_steps"], seed=1000)
    got = [(e["init_state_id"], e["success"], e["length"]) for e in r["episodes"]]
    assert got == [(x["init_id"], x["success"], x["steps"]) for x in own]
    assert all(e["success"] and e["goal_fraction"] == 1.0 for e in r["episodes"]), got
    assert r["per_task"][0]["success_rate"] == 1.0 and r["policy"]["type"] == "scripted_expert"


class _CaptureFirstObservation:
    """A SimPolicy that keeps what the policy would see at step 0 and holds still."""

    name = "capture"

    def __init__(self):
        self.first = None

    def __call__(self, observation, ctx):
        if self.first is None:
            self.first = {k: v.clone() for k, v in observation.items() if k.startswith("observation.")}
        a = np.zeros((len(ctx.task), 7), dtype=np.float32)
        a[:, 6] = -1.0
        return a


@pytest.mark.slow
def test_policy_sees_images_in_the_orientation_of_the_recorded_demos(tmp_path):
    """Issue 5, Must-show 3: a policy trained on eval_sim/demos.py data sees, in eval_sim, images in the
    same orientation (and the same 8-dim state) as in its training data. Real frames: the first frame of a
    demo recorded from init state 0 (PNG storage: lossless) vs what eval_sim hands the policy at step 0 of
    init state 0 with the same seed; both must be equal, and differ from the unrotated / mirrored image."""
    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.envs.configs import LiberoEnv

    from eval_sim.evaluate import EvalSimConfig, evaluate
    from lerobot_world.cli import main as cli

    size = 32
    root = tmp_path / "demos"
    cli(["demos", "--suite=libero_object", "--task_ids=0", "--episodes_per_task=1", f"--image_size={size}",
         "--num_workers=1", "--seed=0", "--init=fixed", "--init_start=0", "--use_videos=false", f"--output_dir={root}",
         "--repo_id=local/evs_orient"])
    demo = LeRobotDataset("local/evs_orient", root=root)[0]
    assert int(demo["episode_index"]) == 0 and int(demo["frame_index"]) == 0

    cap = _CaptureFirstObservation()
    cfg = EvalSimConfig(
        env=LiberoEnv(task="libero_object", task_ids=[0], observation_height=size, observation_width=size),
        n_episodes_per_task=1, max_steps=1, seed=0, init_state_start=0, output_dir=tmp_path / "eval", video=False,
    )
    evaluate(cfg, policy=cap)
    for key in ("observation.images.image", "observation.images.image2"):
        seen, recorded = cap.first[key][0], demo[key]
        assert seen.shape == recorded.shape == (3, size, size)
        assert torch.allclose(seen, recorded, atol=0.5 / 255), f"{key}: eval_sim and demo frames differ"
        for other in (torch.flip(recorded, dims=[1, 2]), torch.flip(recorded, dims=[1]), torch.flip(recorded, dims=[2])):
            assert (seen - other).abs().mean() > 0.02, f"{key}: test cannot tell orientations apart"
    assert torch.allclose(cap.first["observation.state"][0], demo["observation.state"], atol=1e-5)


class _CaptureEachBatch(_CaptureFirstObservation):
    def __init__(self):
        super().__init__()
        self.batches = []

    def reset(self):
        self.first = None

    def __call__(self, observation, ctx):
        out = super().__call__(observation, ctx)
        if ctx.step == 0:
            self.batches.append(self.first)
        return out


@pytest.mark.slow
def test_each_episode_starts_from_its_recorded_init_state(tmp_path):
    """results.json's init_state_id is the LIBERO init state the episode really started from, also for a
    batch of parallel envs and an offset (LeRobot's own env would start every sub-env at 0, 1, ...)."""
    import torch
    from lerobot.envs import preprocess_observation
    from lerobot.envs.configs import LiberoEnv as LiberoEnvConfig
    from lerobot.envs.libero import LiberoEnv, _get_suite

    from eval_sim.evaluate import EvalSimConfig, evaluate

    size = 32
    env_cfg = LiberoEnvConfig(task="libero_object", task_ids=[2], observation_height=size, observation_width=size)
    cap = _CaptureEachBatch()
    cfg = EvalSimConfig(env=env_cfg, n_episodes_per_task=3, batch_size=2, max_steps=1, seed=7, init_state_start=5,
                        output_dir=tmp_path / "eval", video=False)
    r = evaluate(cfg, policy=cap)
    assert [(e["episode_index"], e["init_state_id"], e["seed"]) for e in r["episodes"]] == [(0, 5, 7), (1, 6, 8), (2, 7, 9)]
    seen = torch.cat([b["observation.images.image"] for b in cap.batches])[:3]  # the last batch has a padding env

    env_pre, _ = env_cfg.get_env_processors()
    env = LiberoEnv(_get_suite("libero_object"), 2, "libero_object", observation_height=size, observation_width=size,
                    obs_type="pixels_agent_pos")
    try:
        for e, init_id in enumerate([5, 6, 7]):
            env.init_state_id = init_id
            raw, _ = env.reset(seed=7 + e)
            batch = {"pixels": {k: v[None] for k, v in raw["pixels"].items()}}
            ref = env_pre({**preprocess_observation(batch), "task": [env.task_description]})["observation.images.image"][0]
            assert torch.allclose(seen[e], ref, atol=1.5 / 255), f"episode {e} did not start from init state {init_id}"
            others = [i for i in range(3) if i != e]
            assert all((seen[o] - ref).abs().mean() > 1e-3 for o in others), "init states 5..7 look the same"
    finally:
        env.close()


@pytest.mark.slow
def test_checkpoint_trained_on_fixed_init_demos_is_not_scored_on_them(tmp_path, capsys):
    """The real chain: `demos --init=fixed` (init states 0, 1) -> lerobot-train ACT (its train_config.json) ->
    eval-sim refuses init states 0..2 (exit 2, nothing written), evaluates from 2 on with no overlap recorded,
    and with --allow_training_init_states=true records the overlap it was told to accept."""
    from conftest import TINY_POLICY_FLAGS, lerobot_train

    from eval_sim.evaluate import main
    from lerobot_world.cli import main as cli

    root, repo = tmp_path / "demos", "local/evs_fixed_demos"
    cli(["demos", "--suite=libero_object", "--task_ids=0", "--episodes_per_task=2", f"--image_size={SIM_IMAGE}",
         "--num_workers=1", "--init=fixed", "--use_videos=false", f"--output_dir={root}", f"--repo_id={repo}"])
    demos_res = json.loads((root / "results.json").read_text())
    assert [e["init_id"] for e in demos_res["episodes"] if e["success"]] == [0, 1], demos_res["episodes"]
    run = tmp_path / "act"
    tiny = [f for f in TINY_POLICY_FLAGS if "world" not in f and "future_offset" not in f]
    result = lerobot_train(
        ["--policy.type=act", "--policy.pretrained_backbone_weights=null", f"--dataset.repo_id={repo}",
         f"--dataset.root={root}", f"--output_dir={run}", "--steps=2", "--batch_size=4", "--save_freq=2",
         "--num_workers=0", "--wandb.enable=false", "--seed=0", *tiny],
        cwd=tmp_path,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    ckpt = run / "checkpoints" / "last" / "pretrained_model"
    capsys.readouterr()

    common = [f"--policy.path={ckpt}", "--env.task=libero_object", "--env.task_ids=[0]", "--max_steps=5",
              "--video=false", "--device=cpu"]
    with pytest.raises(SystemExit) as e:
        main([*common, "--n_episodes_per_task=3", f"--output_dir={tmp_path / 'refused'}"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "libero_object task 0 init states 0-1" in err and "--init_state_start=2" in err
    assert not (tmp_path / "refused").exists()

    main([*common, "--n_episodes_per_task=1", "--init_state_start=2", f"--output_dir={tmp_path / 'clean'}"])
    clean = json.loads((tmp_path / "clean" / "results.json").read_text())
    assert clean["training_init_states"] == {"known": True, "source": str((root / "results.json").resolve()),
                                             "n_training_init_states": 2, "overlap": [],
                                             "allow_training_init_states": False}
    assert [ep["init_state_id"] for ep in clean["episodes"]] == [2]

    main([*common, "--n_episodes_per_task=1", "--allow_training_init_states=true", f"--output_dir={tmp_path / 'on'}"])
    on = json.loads((tmp_path / "on" / "results.json").read_text())
    assert on["training_init_states"]["overlap"] == [{"suite": "libero_object", "task_id": 0, "init_states": [0]}]
    assert "ON TRAINING INIT STATES" in (tmp_path / "on" / "results.md").read_text()
