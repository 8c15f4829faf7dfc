"""scripts/compare_runs.py: paired numbers from two exported runs' results files, and one clear error when the
runs were not scored on the same episodes."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run_dir(tmp: Path, name: str, successes: list[bool], se_sums: list[float], init_offset: int = 0) -> Path:
    run = tmp / name
    (run / "eval_sim").mkdir(parents=True)
    (run / "eval_offline").mkdir()
    episodes = [{"suite": "libero_object", "task_id": 0, "init_state_id": i + init_offset, "seed": 1000 + i,
                 "success": s} for i, s in enumerate(successes)]
    (run / "eval_sim" / "results.json").write_text(json.dumps({"episodes": episodes}))
    per_episode = [{"episode_index": 30 + i, "task_index": 0, "se_sum": se, "n_values": 10} for i, se in enumerate(se_sums)]
    (run / "eval_offline" / "results.json").write_text(json.dumps({"checkpoints": [{"per_episode": per_episode}]}))
    return run


def _compare(a: Path, b: Path):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "compare_runs.py"), str(a), str(b),
                           "--labels", "fp32", "bf16"], capture_output=True, text=True, cwd=ROOT)


def test_paired_success_and_mse_from_results_files(tmp_path):
    a = _run_dir(tmp_path, "a", [True] * 4 + [False] * 6, [1.0] * 6)
    b = _run_dir(tmp_path, "b", [True] * 7 + [False] * 3, [0.5] * 6)
    out = _compare(a, b)
    assert out.returncode == 0, out.stderr
    assert "| fp32 | 4/10 | 40.0% |" in out.stdout and "| bf16 | 7/10 | 70.0% |" in out.stdout
    assert "Paired difference bf16 − fp32: +0.300" in out.stdout
    assert "3 episodes only bf16 solved, 0 only fp32 solved" in out.stdout
    assert "| fp32 | 0.1000 |" in out.stdout and "| bf16 | 0.0500 |" in out.stdout
    assert "Paired difference bf16 − fp32: -0.0500" in out.stdout


def test_runs_on_different_episodes_are_refused(tmp_path):
    a = _run_dir(tmp_path, "a", [True, False] * 5, [1.0] * 6)
    b = _run_dir(tmp_path, "b", [True, False] * 5, [1.0] * 6, init_offset=5)
    out = _compare(a, b)
    assert out.returncode != 0 and "closed-loop episodes differ" in out.stderr
    missing = _compare(a, tmp_path / "nope")
    assert missing.returncode != 0 and "eval_sim/results.json does not exist" in missing.stderr
