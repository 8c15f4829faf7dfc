"""Shared fixtures: small local datasets in the DESIGN §3 schema, made once per test session."""

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

# Tests never need the network: force LeRobot/HF/wandb offline before anything imports them.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

TOY_REPO_ID = "local/toy_libero"
# scripts/gpu_check.sh sets LEROBOT_WORLD_TEST_DEVICE=cuda to run the same tests on a GPU.
TEST_DEVICE = os.environ.get("LEROBOT_WORLD_TEST_DEVICE", "cpu")


@pytest.fixture(scope="session")
def toy_dataset_root(tmp_path_factory) -> Path:
    """Video-backed toy dataset: two cameras, 3 tasks x 4 episodes, 32 px (read-only: do not modify)."""
    from lerobot_world.toy_dataset import make_toy_dataset

    root = tmp_path_factory.mktemp("toy") / "toy_libero"
    make_toy_dataset(root, repo_id=TOY_REPO_ID, episodes_per_task=4, n_tasks=3, image_size=32)
    return root


@pytest.fixture(scope="session")
def toy_dataset(toy_dataset_root):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(TOY_REPO_ID, root=toy_dataset_root)


# A trunk small enough that 20 lerobot-train steps take seconds on 2 CPU cores.
TINY_POLICY_FLAGS = [
    "--policy.dim_model=32",
    "--policy.n_heads=2",
    "--policy.dim_feedforward=64",
    "--policy.n_encoder_layers=1",
    "--policy.n_decoder_layers=2",
    "--policy.n_vae_encoder_layers=1",
    "--policy.latent_dim=8",
    "--policy.chunk_size=10",
    "--policy.n_action_steps=10",
    "--policy.future_offset=3",
    "--policy.world_context=2",
    "--policy.world_aux_hidden_dim=32",
    f"--policy.device={TEST_DEVICE}",
    "--policy.push_to_hub=false",
]
TOY_EVAL_SPLIT = 0.25
VARIANTS = ("A", "B", "C", "C_no_world_input")


@pytest.fixture(scope="session")
def toy_world_table(toy_dataset_root, tmp_path_factory) -> Path:
    """A world-token table (offline encoder, V=8) of the toy dataset, through the real CLI."""
    from lerobot_world.cli import main

    out = tmp_path_factory.mktemp("tables") / "toy_v8"
    main([
        "tokenize",
        f"--dataset.repo_id={TOY_REPO_ID}",
        f"--dataset.root={toy_dataset_root}",
        "--vocab_size=8",
        f"--eval_split={TOY_EVAL_SPLIT}",
        f"--output_dir={out}",
    ])
    return out


def lerobot_train(args: list[str], cwd: Path, timeout: int = 600, env: dict | None = None):
    """Run the real `lerobot-train` console script (plugin discovery included) and return the result."""
    import subprocess
    import sys

    exe = Path(sys.executable).parent / "lerobot-train"
    return subprocess.run(
        [str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env or os.environ.copy()
    )


def train_toy_variant(variant: str, dataset_root: Path, table: Path, out_dir: Path, steps: int = 20, extra=(),
                      env: dict | None = None):
    args = [
        "--policy.type=world_vla",
        f"--policy.variant={variant}",
        f"--dataset.repo_id={TOY_REPO_ID}",
        f"--dataset.root={dataset_root}",
        f"--dataset.eval_split={TOY_EVAL_SPLIT}",
        f"--output_dir={out_dir}",
        f"--steps={steps}",
        "--batch_size=4",
        "--log_freq=5",
        f"--save_freq={steps}",
        "--num_workers=0",
        "--wandb.enable=false",
        "--seed=0",
        *TINY_POLICY_FLAGS,
        *extra,
    ]
    if variant != "A":
        args.append(f"--policy.world_tokens={table}")
    return lerobot_train(args, cwd=out_dir.parent, env=env)


@pytest.fixture(scope="session")
def trained_checkpoints(toy_dataset_root, toy_world_table, tmp_path_factory) -> dict:
    """All four variants trained 20 steps by `lerobot-train` on the toy dataset: variant -> (pretrained dir, log)."""
    runs = {}
    base = tmp_path_factory.mktemp("runs")
    for variant in VARIANTS:
        out = base / variant
        result = train_toy_variant(variant, toy_dataset_root, toy_world_table, out)
        log = result.stdout + result.stderr
        assert result.returncode == 0, f"lerobot-train variant {variant} failed:\n{log[-4000:]}"
        runs[variant] = (out / "checkpoints" / "last" / "pretrained_model", log)
    return runs


def kill_job_when(cmd: list[str], condition: Callable[[], bool], timeout_s: float = 1500, **popen) -> str:
    """Run ``cmd`` in its own process group and SIGKILL the whole group (runner, trainers, envs) as soon as
    ``condition()`` holds, as an interrupted work session would; returns the job's output so far."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, **popen)
    deadline = time.time() + timeout_s
    while time.time() < deadline and proc.poll() is None:
        if condition():
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.5)
    proc.wait()
    return proc.stdout.read()
