"""Shared fixtures: small local datasets in the DESIGN §3 schema, made once per test session."""

import os
from pathlib import Path

import pytest

# Tests never need the network: force LeRobot/HF/wandb offline before anything imports them.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

TOY_REPO_ID = "local/toy_libero"


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
