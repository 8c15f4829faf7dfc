"""The project's one train/held-out split of a dataset's episodes.

It is LeRobot's own rule (``lerobot.datasets.factory.make_train_eval_datasets``): episodes are
grouped by task in episode order, and the last ``ceil(n * eval_split)`` episodes of each task are
held out. Re-stating the rule here (it is not exposed as a function in LeRobot) lets tokenize,
offline evaluation and the matrix runner compute the split from dataset metadata alone, and
``lerobot-train --dataset.eval_split=F`` then trains on exactly the same training episodes;
``tests/test_splits.py`` runs LeRobot's function and checks the two agree. The rule is deterministic (no random seed).
"""

import json
import math
import sys
from dataclasses import dataclass, field

DEFAULT_EVAL_SPLIT = 0.2


@dataclass(frozen=True)
class EpisodeSplit:
    train: list[int]
    heldout: list[int]
    eval_split: float

    def to_dict(self) -> dict:
        return {"eval_split": self.eval_split, "train": self.train, "heldout": self.heldout}


def episode_tasks(meta) -> dict[int, str]:
    """Episode index -> its (first) task string, from a LeRobotDatasetMetadata."""
    tasks = meta.episodes["tasks"]
    indices = meta.episodes["episode_index"]
    return {int(ep): (t[0] if t else "") for ep, t in zip(indices, tasks, strict=True)}


def split_episodes(
    tasks_by_episode: dict[int, str], eval_split: float = DEFAULT_EVAL_SPLIT, episodes: list[int] | None = None
) -> EpisodeSplit:
    """Split ``episodes`` (default: all) stratified by task, exactly as LeRobot's eval_split does."""
    if not 0.0 <= eval_split < 1.0:
        raise ValueError(f"eval_split must be in [0.0, 1.0), got {eval_split}")
    base = sorted(tasks_by_episode) if episodes is None else list(episodes)
    unknown = [ep for ep in base if ep not in tasks_by_episode]
    if unknown:
        raise ValueError(f"episodes {unknown[:5]} are not in the dataset (it has {len(tasks_by_episode)})")
    by_task: dict[str, list[int]] = {}
    for ep in base:
        by_task.setdefault(tasks_by_episode[ep], []).append(ep)
    train, heldout = [], []
    for eps in by_task.values():
        n_eval = math.ceil(len(eps) * eval_split)
        train.extend(eps[: len(eps) - n_eval])
        heldout.extend(eps[len(eps) - n_eval :])
    if not train:
        raise ValueError(f"eval_split={eval_split} leaves 0 training episodes from {len(base)} total")
    return EpisodeSplit(train=sorted(train), heldout=sorted(heldout), eval_split=eval_split)


def split_dataset(meta, eval_split: float = DEFAULT_EVAL_SPLIT, episodes: list[int] | None = None) -> EpisodeSplit:
    return split_episodes(episode_tasks(meta), eval_split, episodes)


@dataclass
class DatasetArgs:
    repo_id: str = "local/dataset"
    root: str | None = None


@dataclass
class SplitConfig:
    dataset: DatasetArgs = field(default_factory=DatasetArgs)
    eval_split: float = DEFAULT_EVAL_SPLIT


def main(argv: list[str] | None = None) -> None:
    """`lerobot-world split`: print the split as JSON (and the matching lerobot-train flag)."""
    from lerobot_world.dataset import open_metadata
    from lerobot_world.errors import fail, parse_config, run_command

    cfg = run_command(parse_config, SplitConfig, sys.argv[1:] if argv is None else argv)
    meta = run_command(open_metadata, cfg.dataset.repo_id, cfg.dataset.root)
    try:
        split = split_dataset(meta, cfg.eval_split)
    except ValueError as e:
        fail(str(e))
    print(json.dumps(split.to_dict()))
    print(f"# train with: lerobot-train --dataset.eval_split={cfg.eval_split} ...", file=sys.stderr)
