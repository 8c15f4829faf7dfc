"""The LeRobotDataset side shared by every command: opening a dataset's metadata, and the LIBERO schema.

`open_metadata` gives one error sentence for a root that is not a dataset or a dataset LeRobot cannot open,
so `tokenize`, `eval-offline`, `token-agreement`, `split` and the study's fingerprint all say the same thing.
`libero_features` is the HuggingFaceVLA/libero feature spec that the demos recorder writes and the toy
dataset of the tests copies.
"""

from pathlib import Path

from lerobot_world.errors import UserError, first_line
from lerobot_world.vocabulary import AGENT_KEY, WRIST_KEY


def dataset_root(repo_id: str, root: str | Path | None) -> Path:
    """Where the dataset lives on disk: `root`, or LeRobot's cache folder for `repo_id`."""
    if root:
        return Path(root).expanduser()
    from lerobot.utils.constants import HF_LEROBOT_HOME

    return Path(HF_LEROBOT_HOME) / repo_id


def open_metadata(repo_id: str, root: str | Path | None, flag: str = "--dataset.root"):
    """LeRobotDatasetMetadata of `repo_id` at `root` (None: LeRobot's cache or the Hub), or one UserError."""
    from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata

    path = Path(root).expanduser() if root else None
    if path is not None and not (path / "meta" / "info.json").is_file():
        raise UserError(f"{flag}={root} is not a LeRobot dataset (no meta/info.json there)")
    try:
        return LeRobotDatasetMetadata(repo_id, root=path)
    except Exception as e:  # noqa: BLE001 - LeRobot/Hub errors vary; the first line names the cause
        first = first_line(e)
        raise UserError(f"could not open dataset {repo_id!r} ({flag}={root}): {first}") from None


def libero_features(image_size: int, use_videos: bool = True) -> dict:
    """LeRobot feature spec of the HuggingFaceVLA/libero schema at a given square image size."""
    img = {
        "dtype": "video" if use_videos else "image",
        "shape": (image_size, image_size, 3),
        "names": ["height", "width", "channel"],
    }
    return {
        AGENT_KEY: dict(img),
        WRIST_KEY: dict(img),
        "observation.state": {
            "dtype": "float32",
            "shape": (8,),
            "names": {"motors": ["x", "y", "z", "axis_angle1", "axis_angle2", "axis_angle3", "gripper", "gripper"]},
        },
        "action": {
            "dtype": "float32",
            "shape": (7,),
            "names": {"motors": ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]},
        },
    }
