"""The main job (`make demo` = scripts/quickstart.py) as a user runs it, at a tiny budget: killed during
training, run again it continues and finishes; a third run redoes nothing and writes the same tables."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import kill_job_when

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = [sys.executable, str(ROOT / "scripts" / "quickstart.py")]


def _tables(report: str) -> str:
    """The report without its wall-time line (the one line a re-run may change: it adds the re-run's checks)."""
    return "\n".join(ln for ln in report.splitlines() if "Wall time per stage" not in ln)


@pytest.mark.slow
# The whole job runs more than twice here (killed in B's training, then the rest, then a no-op check): 1127 s on
# a 2-core CPU, past the suite's 900 s per-test default; each subprocess keeps its own limit below.
@pytest.mark.timeout(2400)
def test_quickstart_killed_during_training_continues_and_finishes_with_the_same_tables(tmp_path):
    out = tmp_path / "demo"
    args = [f"--output_dir={out}", "--episodes=3", "--steps=2", "--sim_episodes=1", "--max_steps=10"]
    # Kill the whole job (quickstart, matrix runner, trainer) once the second arm has started training.
    b_log = out / "matrix" / "runs" / "B_s0" / "train.log"
    first = kill_job_when(QUICKSTART + args, b_log.is_file, 1500, cwd=ROOT)
    assert b_log.is_file(), f"the job never reached B's training:\n{first[-3000:]}"
    assert not (out / "REPORT.md").exists(), "the job finished before it could be killed; the test proved nothing"

    second = subprocess.run(QUICKSTART + args, cwd=ROOT, capture_output=True, text=True, timeout=1500)
    log = second.stdout + second.stderr
    assert second.returncode == 0, log[-4000:]
    assert "exists, skipped" in log  # the demos are not recorded again
    assert "A_s0: train done (step 2), skipped" in log
    report = (out / "REPORT.md").read_text()
    for arm in ("A_s0", "B_s0", "C_s0", "C_no_world_input_s0"):
        assert arm in report
    assert re.search(r"corrupt", report, re.I) and "### Rollout videos" in report
    preamble = (out / "report_preamble.md").read_text()
    assert "Wall time per stage" in preamble
    for stage in ("demos", "train", "eval_offline", "eval_sim", "closed-loop corruption (C)"):
        assert f"{stage} " in preamble, preamble
    # Every closed-loop episode started from a fixed init state no demo used (the demos are random placements).
    demos = json.loads((out / "data" / "libero_demo" / "results.json").read_text())
    assert demos["config"]["init"] == "random"

    third = subprocess.run(QUICKSTART + args, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert third.returncode == 0, (third.stdout + third.stderr)[-4000:]
    assert "training to step" not in third.stdout + third.stderr
    assert _tables((out / "REPORT.md").read_text()) == _tables(report)
