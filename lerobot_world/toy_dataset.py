"""A small synthetic LeRobotDataset in the HuggingFaceVLA/libero schema (DESIGN §3).

Used by the tests and by quick CPU checks: it needs no simulator and no network, but has the
exact feature names, dtypes and shapes of the real data (two cameras as video, 8-dim state,
7-dim action in [-1, 1], a task string per frame), several tasks and episodes of varied length.

The scene is a rendered toy world: a coloured object whose target position depends on the task,
an "end effector" dot that moves to the object, closes the gripper, and carries it to the target.
Images therefore change over an episode in a way the action depends on, which is what world
tokens should capture.
"""

from pathlib import Path

import numpy as np

from lerobot_world.dataset import libero_features
from lerobot_world.vocabulary import AGENT_KEY, WRIST_KEY

TOY_TASKS = (
    "put the red block in the left bin",
    "put the red block in the right bin",
    "put the blue block in the top bin",
)


def _draw_disc(img: np.ndarray, cx: float, cy: float, r: float, color) -> None:
    h, w, _ = img.shape
    yy, xx = np.mgrid[0:h, 0:w]
    mask = (xx - cx * w) ** 2 + (yy - cy * h) ** 2 <= (r * w) ** 2
    img[mask] = color


def _render(task_id: int, eef: np.ndarray, obj: np.ndarray, target: np.ndarray, closed: bool, size: int):
    agent = np.zeros((size, size, 3), dtype=np.uint8)
    agent[:] = (40 + 30 * task_id, 40, 60)
    _draw_disc(agent, target[0], target[1], 0.12, (90, 90, 90))
    _draw_disc(agent, obj[0], obj[1], 0.08, (220, 40, 40) if task_id < 2 else (40, 40, 220))
    _draw_disc(agent, eef[0], eef[1], 0.05, (240, 240, 240) if closed else (240, 200, 0))
    # Wrist view: the object seen relative to the end effector, zoomed.
    wrist = np.zeros((size, size, 3), dtype=np.uint8)
    wrist[:] = (20, 60 + 30 * task_id, 20)
    rel = 0.5 + 2.0 * (obj - eef)
    _draw_disc(wrist, rel[0], rel[1], 0.2, (220, 40, 40) if task_id < 2 else (40, 40, 220))
    return agent, wrist


def toy_episode(task_id: int, rng: np.random.Generator, size: int) -> list[dict]:
    """One scripted episode: reach the object, grasp, carry to the task's target, release."""
    targets = {0: (0.15, 0.5), 1: (0.85, 0.5), 2: (0.5, 0.15)}
    eef = np.array([0.5, 0.85]) + rng.uniform(-0.05, 0.05, 2)
    obj = np.array([0.5, 0.5]) + rng.uniform(-0.15, 0.15, 2)
    target = np.array(targets[task_id])
    frames, closed, phase = [], False, 0
    for _ in range(200):
        goal = obj if phase == 0 else target
        delta = np.clip((goal - eef) / 0.04, -1.0, 1.0)
        if phase == 0 and np.linalg.norm(goal - eef) < 0.02:
            phase, closed = 1, True
        elif phase == 1 and np.linalg.norm(goal - eef) < 0.02:
            phase, closed = 2, False
        grip = 1.0 if closed else -1.0
        action = np.zeros(7, dtype=np.float32)
        action[:2] = delta if phase < 2 else 0.0
        action[2] = -0.2 if phase == 1 else 0.2
        action[6] = grip
        agent, wrist = _render(task_id, eef, obj, target, closed, size)
        state = np.zeros(8, dtype=np.float32)
        state[:2], state[2] = eef, 0.1 * phase
        state[6:8] = (0.0, 0.0) if closed else (0.04, -0.04)
        frames.append({AGENT_KEY: agent, WRIST_KEY: wrist, "observation.state": state, "action": action})
        if phase == 2:
            if len(frames) >= 4 and rng.random() < 0.5:
                break
            continue
        eef = eef + 0.02 * delta + rng.normal(0, 0.002, 2)
        if closed:
            obj = eef.copy()
    return frames


def make_toy_dataset(
    root: str | Path,
    repo_id: str = "local/toy_libero",
    episodes_per_task: int = 4,
    n_tasks: int = 3,
    image_size: int = 32,
    use_videos: bool = True,
    seed: int = 0,
    fps: int = 10,
):
    """Write the toy dataset to ``root`` (must not exist) and return it as a LeRobotDataset."""
    from lerobot.configs.video import RGBEncoderConfig
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    if not 1 <= n_tasks <= len(TOY_TASKS):
        raise ValueError(f"n_tasks must be in 1..{len(TOY_TASKS)}, got {n_tasks}")
    rng = np.random.default_rng(seed)
    ds = LeRobotDataset.create(
        repo_id=repo_id,
        fps=fps,
        features=libero_features(image_size, use_videos),
        root=root,
        robot_type="panda",
        use_videos=use_videos,
        # h264 "ultrafast": ~1 s per episode here instead of minutes with LeRobot's default AV1.
        rgb_encoder=RGBEncoderConfig(vcodec="h264", preset="ultrafast", crf=18, g=2) if use_videos else None,
    )
    for ep in range(episodes_per_task * n_tasks):
        task_id = ep % n_tasks
        for frame in toy_episode(task_id, rng, image_size):
            ds.add_frame({**frame, "task": TOY_TASKS[task_id]})
        ds.save_episode()
    ds.finalize()
    return LeRobotDataset(repo_id, root=root)
