"""The report: tables from run directories, plots, and an interpretation that follows the intervals."""

import json

import pytest

from lerobot_world.report import ReportError, build_report, main, wilson


def _offline(variant: str, mse: float, ci: tuple, ratio: float, ratio_ci: tuple, world: bool) -> dict:
    uses_input = variant == "C"
    metric = {"value": mse, "ci95": list(ci)}
    entry = {
        "variant": variant,
        "action": {
            "n_frames": 100, "n_episodes": 5,
            "normalized": {"mse": metric, "l1": metric, "first_step_mse": metric},
            "raw": {"mse": metric, "l1": metric, "first_step_mse": metric},
        },
        "world": None,
        "corruption": {
            "uses_world_input": uses_input,
            "clean_mse": mse,
            "modes": {m: {"mse": mse * ratio, "ratio": ratio, "ratio_ci95": list(ratio_ci)} for m in ("random", "shuffle", "mask")},
        },
    }
    if world:
        per_k = [{"k": k, "top1": 0.9, "top5": 1.0, "copy": 0.5, "bigram_top1": 0.6} for k in (1, 2)]
        entry["world"] = {"K": 2, "vocab_size": 8, "per_k": per_k,
                          "avg": {"top1": 0.9, "top1_ci95": [0.85, 0.95], "top5": 1.0, "copy": 0.5,
                                  "bigram_top1": 0.6, "bigram_top5": 0.9}}
    return {"command": f"lerobot-world eval-offline --policy.path={variant}", "checkpoints": [entry]}


def _sim(k: int, n: int, world: tuple | None = None) -> dict:
    """An eval_sim results.json; ``world`` = (accuracy per k, copy baseline per k or None for the old format)."""
    row = {"n_episodes": n, "n_success": k, "success_rate": k / n, "ci95": list(wilson(k, n)),
           "mean_length": 100.0, "goal_fraction": k / n, "jerk": 0.01, "chunk_jump_boundary": 0.02,
           "chunk_jump_within": 0.01, "success_within": {"100": k / n / 2, "200": k / n}}
    if world:
        acc, copy = world
        row["world_accuracy"] = {str(i + 1): v for i, v in enumerate(acc)}
        row["world_pairs"] = {str(i + 1): 40 for i in range(len(acc))}
        if copy is not None:
            row["world_copy_baseline"] = {str(i + 1): v for i, v in enumerate(copy)}
    return {"command": "lerobot-world eval-sim ...", "seed": 1000, "episode_seeds": "seed + episode",
            "env": {"max_steps": 200}, "overall": row,
            "per_task": [{"suite": "libero_object", "task_id": 0, "task": "pick", **row}]}


@pytest.fixture
def runs_dir(tmp_path):
    specs = {  # variant: (offline mse, ci, corruption ratio, ratio ci, successes of 40)
        "A": (0.50, (0.45, 0.55), 1.0, (1.0, 1.0), 10),
        "B": (0.48, (0.43, 0.53), 1.0, (1.0, 1.0), 12),
        "C": (0.30, (0.25, 0.35), 1.8, (1.5, 2.1), 34),
        "C_no_world_input": (0.47, (0.42, 0.52), 1.0, (1.0, 1.0), 11),
    }
    sim_world = {  # closed-loop (accuracy per k, copy baseline per k)
        "B": ([0.9, 0.7], [0.5, 0.8]),
        "C": ([0.4, 0.2], [0.9, 0.7]),
        "C_no_world_input": ([0.5, 0.5], None),  # a results.json from before the copy baseline existed
    }
    for variant, (mse, ci, ratio, ratio_ci, k) in specs.items():
        run = tmp_path / "matrix" / "runs" / f"{variant}_s0"
        (run / "eval_offline").mkdir(parents=True)
        (run / "eval_sim").mkdir()
        (run / "state.json").write_text(json.dumps({"name": f"{variant}_s0", "variant": variant, "seed": 0, "sweep": None}))
        (run / "policy_config.json").write_text(json.dumps({"type": "world_vla", "variant": variant, "future_offset": 2,
                                                            "world_vocab_size": 8, "dim_model": 32}))
        (run / "eval_offline" / "results.json").write_text(json.dumps(_offline(variant, mse, ci, ratio, ratio_ci, variant != "A")))
        (run / "eval_sim" / "results.json").write_text(json.dumps(_sim(k, 40, sim_world.get(variant))))
    return tmp_path / "matrix"


def test_report_tables_plots_and_interpretation(runs_dir, tmp_path):
    out = build_report([runs_dir], tmp_path / "out" / "REPORT.md")
    text = out.read_text()
    for heading in ("## 1. Configurations", "## 2. Offline evaluation", "## 3. World corruption",
                    "## 4. Closed-loop LIBERO evaluation", "## 5. What the numbers support", "## 6. Provenance"):
        assert heading in text
    assert (tmp_path / "out" / "world_accuracy.png").stat().st_size > 1000
    assert (tmp_path / "out" / "success_within_T.png").stat().st_size > 1000
    # C 34/40 vs C_no_world_input 11/40: Wilson intervals separate; B 12/40 vs A 10/40 overlap.
    assert "C 34/40 = 85% [71, 93] vs C_no_world_input 11/40" in text
    assert "(C vs C_no_world_input): C 34/40" in text and "the intervals separate: C is higher" in text
    assert "B 12/40 = 30% [18, 45] vs A 10/40 = 25% [14, 40]; the 95% intervals overlap" in text
    assert "Corruption, C_s0: corrupting the world input changes its action error" in text
    assert "World prediction, C_s0: top-1 0.900 [0.850, 0.950] beats the copy baseline 0.500" in text
    # closed-loop world accuracy beside the closed-loop copy baseline, means over k; old results show "—"
    assert "| run | accuracy | copy | accuracy per k | copy per k | pairs per k |" in text
    assert "| C_s0 | 0.300 | 0.800 | k1:0.40 k2:0.20 | k1:0.90 k2:0.70 | 40 |" in text
    assert "| B_s0 | 0.800 | 0.650 | k1:0.90 k2:0.70 | k1:0.50 k2:0.80 | 40 |" in text
    assert "| C_no_world_input_s0 | 0.500 | — | k1:0.50 k2:0.50 | — | 40 |" in text
    assert ("- Closed-loop world prediction, C_s0: accuracy 0.300 (mean over k) is below the closed-loop copy "
            "baseline 0.800 on the same pairs; above it at 0 and below at 2 of 2 horizon(s)") in text
    assert ("- Closed-loop world prediction, B_s0: accuracy 0.800 (mean over k) is above the closed-loop copy "
            "baseline 0.650 on the same pairs; above it at 1 and below at 1 of 2 horizon(s)") in text
    for run in ("A_s0", "C_no_world_input_s0"):  # no world accuracy / no copy baseline: nothing to compare
        assert f"Closed-loop world prediction, {run}" not in text
    assert json.loads((tmp_path / "out" / "REPORT.json").read_text())["plots"] == ["world_accuracy.png", "success_within_T.png"]


def test_report_bad_input(tmp_path, capsys):
    with pytest.raises(ReportError, match="does not exist"):
        build_report([tmp_path / "nope"], tmp_path / "R.md")
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "empty_run"), f"--output={tmp_path / 'R.md'}"])
    assert exc.value.code == 2
    assert "is not a run directory" in capsys.readouterr().err
    assert not (tmp_path / "R.md").exists()
