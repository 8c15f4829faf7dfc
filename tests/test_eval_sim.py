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

# ----------------------------------------------------------------------------------------------------
# Metric functions
# ----------------------------------------------------------------------------------------------------


def test_wilson_interval_matches_hand_computation():
    # p = 0.3, n = 10, z = 1.959964: centre (p + z²/2n)/(1 + z²/n), half-width z*sqrt(p(1-p)/n + z²/4n²)/(1 + z²/n)
    z = 1.959963984540054
    p, n = 0.3, 10
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo, hi = metrics.wilson_interval(3, 10)
    assert lo == pytest.approx(centre - half, abs=1e-9) and hi == pytest.approx(centre + half, abs=1e-9)
    assert (lo, hi) == pytest.approx((0.10779, 0.60322), abs=1e-5)
    # Edge cases: 0/n and n/n stay inside [0, 1] and are not degenerate (unlike the Wald interval).
    lo0, hi0 = metrics.wilson_interval(0, 5)
    assert lo0 == pytest.approx(0.0, abs=1e-12) and hi0 == pytest.approx(z * z / (5 + z * z))
    lo5, hi5 = metrics.wilson_interval(5, 5)
    assert hi5 == pytest.approx(1.0) and lo5 == pytest.approx(5 / (5 + z * z))
    assert metrics.wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        metrics.wilson_interval(6, 5)


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
    correct, count = metrics.world_accuracy_counts(observed, predicted, horizon=3)
    assert count.tolist() == [2, 1, 1]
    assert correct.tolist() == [2, 0, 1]


def test_aggregate_episodes_pools_counts_and_intervals():
    eps = [
        {"success": True, "length": 100, "goal_fraction": 1.0, "jerk": 0.1,
         "chunk_jump": {"boundary": 0.4, "within": 0.1, "n_boundary": 1, "n_within": 9},
         "world": {"correct": [3, 1], "count": [4, 2]}},
        {"success": False, "length": 280, "goal_fraction": 0.5, "jerk": 0.3,
         "chunk_jump": {"boundary": 0.1, "within": 0.2, "n_boundary": 3, "n_within": 1},
         "world": {"correct": [1, 0], "count": [4, 2]}},
    ]
    row = metrics.aggregate_episodes(eps, [100, 280], horizon=2)
    assert row["n_success"] == 1 and row["success_rate"] == 0.5
    assert row["ci95"] == pytest.approx(list(metrics.wilson_interval(1, 2)))
    assert row["success_within"] == {"100": 0.5, "280": 0.5}
    assert row["mean_length"] == 190 and row["mean_length_success"] == 100
    assert row["goal_fraction"] == 0.75 and row["jerk"] == pytest.approx(0.2)
    assert row["chunk_jump_boundary"] == pytest.approx((0.4 * 1 + 0.1 * 3) / 4)
    assert row["chunk_jump_within"] == pytest.approx((0.1 * 9 + 0.2 * 1) / 10)
    assert row["world_accuracy"] == {"1": 0.5, "2": 0.25}
    assert row["world_pairs"] == {"1": 8, "2": 4}


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


def test_bad_cli_input_is_one_clear_sentence(tmp_path):
    from eval_sim.evaluate import main

    with pytest.raises(SystemExit) as e:
        main([f"--policy.path={tmp_path / 'nope'}", f"--output_dir={tmp_path / 'o'}"])
    assert "does not exist" in str(e.value) and "nope" in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as e:
        main([f"--policy.path={tmp_path / 'empty'}", f"--output_dir={tmp_path / 'o'}"])
    assert "no config.json" in str(e.value)
    with pytest.raises(SystemExit) as e:
        main([f"--output_dir={tmp_path / 'o'}"])
    assert "--policy.path" in str(e.value)
    assert not (tmp_path / "o").exists()
