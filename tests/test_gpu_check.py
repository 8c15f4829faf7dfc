"""scripts/gpu_check.sh (issue 8) is only useful on a GPU machine, where a broken script wastes the loan:
its --smoke mode runs every step at toy size on CPU, so the script itself is checked without a GPU."""

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_gpu_check_script_runs_every_step_in_smoke_mode(tmp_path):
    out = tmp_path / "gpu_check"
    p = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), "--smoke", str(out)], cwd=REPO,
                       capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "End of training" in (out / "train.log").read_text() and "world_ce" in (out / "train.log").read_text()
    assert (out / "train_C" / "checkpoints" / "last" / "pretrained_model" / "model.safetensors").is_file()
    assert "world-token table written" in (out / "tokenize.log").read_text()
    bench = json.loads((out / "bench_tokenizer.json").read_text())
    assert bench["device"] == "cpu" and bench["pipeline"]["pipeline_frames_per_s"] > 0 and bench["kmeans_fit_s"] > 0
    assert "tokenize encode stage" in (out / "bench_tokenizer.log").read_text()
    assert "gpu_check done" in p.stdout


def test_gpu_check_without_a_gpu_is_one_clear_error(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible: the real check would run")
    p = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), str(tmp_path / "x")], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode != 0 and "no CUDA GPU" in p.stderr and "--smoke" in p.stderr
    assert not (tmp_path / "x").exists()
