"""The benchmark scripts still run (tiny sizes): a benchmark that rots silently measures nothing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_bench_policy_step_quick_with_profile(tmp_path):
    record_path = tmp_path / "bench.json"
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_policy_step.py"), "--quick", "--profile",
         f"--output={record_path}"],
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
    # the same numbers as JSON, with the profile grouped by operator: shares of one total
    record = json.loads(record_path.read_text())
    assert set(record["models"]) == {"ACT", "world_vla A", "world_vla C"}
    assert record["models"]["ACT"]["vs_act"] == 1.0
    for name, row in record["models"].items():
        assert abs(row["step_s"] / record["models"]["ACT"]["step_s"] - row["vs_act"]) < 1e-9
    groups = record["profile_world_vla_C"]["groups"]
    assert abs(sum(groups.values()) - 1.0) < 1e-6 and groups["convolution forward"] > 0
    assert groups["convolution backward"] > 0 and groups["optimizer (AdamW lerp/addcdiv/addcmul/sqrt)"] > 0
    assert f"{list(groups)[0]}" in out.stdout  # printed too


def test_bench_train_step_refuses_a_missing_dataset(tmp_path):
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_train_step.py"), f"--dataset_root={tmp_path / 'none'}"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert out.returncode != 0
    assert f"--dataset_root={tmp_path / 'none'} is not a LeRobotDataset" in out.stderr


@pytest.mark.slow
def test_bench_env_step_splits_a_libero_step_into_rendering_and_the_rest(tmp_path):
    record_path = tmp_path / "env.json"
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_env_step.py"), "--suite=libero_object", "--task_id=0",
         "--size=32", "--steps=3", f"--output={record_path}"],
        capture_output=True, text=True, timeout=600, cwd=REPO, env={**os.environ, "MUJOCO_GL": "egl"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    record = json.loads(record_path.read_text())
    assert record["step_ms"] > 0 and record["render_two_cameras_ms"] > 0 and record["renderer"]
    assert abs(record["rest_ms"] - (record["step_ms"] - record["render_two_cameras_ms"])) < 0.02
    assert f"env step {record['step_ms']} ms" in out.stdout


def test_bench_env_step_refuses_a_bad_size(tmp_path):
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_env_step.py"), "--size=0"],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode != 0 and "--steps and --size must be >= 1, got 60 and 0" in out.stderr
