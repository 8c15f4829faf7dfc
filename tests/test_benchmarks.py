"""The benchmark scripts still run (tiny sizes): a benchmark that rots silently measures nothing."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_bench_policy_step_quick_with_profile():
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_policy_step.py"), "--quick", "--profile"],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    rows = {line.split()[0] + " " + line.split()[1]: line.split() for line in lines if line.startswith("world_vla")}
    assert set(rows) == {"world_vla A", "world_vla C"}
    assert all(float(r[2]) > 0 and float(r[3]) > 0 for r in rows.values())
    assert any(line.startswith("ACT ") for line in lines)
    assert "Self CPU time total" in out.stdout  # the torch.profiler table
    assert "oneDNN bf16 kernels:" in out.stdout


def test_bench_train_step_refuses_a_missing_dataset(tmp_path):
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_train_step.py"), f"--dataset_root={tmp_path / 'none'}"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert out.returncode != 0
    assert f"--dataset_root={tmp_path / 'none'} is not a LeRobotDataset" in out.stderr
