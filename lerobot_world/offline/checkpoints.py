"""eval-offline's inputs: world_vla checkpoints and the episodes their training run held out.

Resolves and reads checkpoint directories and recovers the training split from train_config.json
with cheap file checks only (no torch), so bad input fails before any model is loaded.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path

from lerobot_world.errors import UserError


class EvalOfflineError(UserError):
    """Bad input: the CLI prints `error: <message>` and exits with status 2."""


@dataclass
class Checkpoint:
    path: Path
    variant: str
    train_config: dict | None
    name: str = ""


def resolve_checkpoint_dir(raw: str) -> Path:
    """The `pretrained_model` dir for a path given as that dir, a `checkpoints/<step>` dir or a run dir."""
    path = Path(raw).expanduser()
    if not path.exists():
        raise EvalOfflineError(
            f"--policy.path={raw} does not exist; expected a checkpoint directory such as "
            "outputs/train/RUN/checkpoints/last/pretrained_model"
        )
    for cand in (path, path / "pretrained_model", path / "checkpoints" / "last" / "pretrained_model"):
        if (cand / "config.json").is_file():
            return cand.resolve()
    raise EvalOfflineError(
        f"--policy.path={raw} holds no config.json; expected a LeRobot pretrained_model directory "
        "(config.json, model.safetensors, processor files)"
    )


def load_checkpoint(raw: str) -> Checkpoint:
    path = resolve_checkpoint_dir(raw)
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise EvalOfflineError(f"--policy.path={raw}: config.json is not readable JSON ({e})") from None
    ptype = config.get("type")
    if ptype != "world_vla":
        raise EvalOfflineError(
            f"--policy.path={raw} is a {ptype!r} policy, not a world_vla policy; eval-offline scores world_vla "
            "checkpoints (variants A, B, C, C_no_world_input)"
        )
    train_config = None
    if (path / "train_config.json").is_file():
        try:
            train_config = json.loads((path / "train_config.json").read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise EvalOfflineError(
                f"--policy.path={raw}: train_config.json is not readable JSON ({e})"
            ) from None
    return Checkpoint(path=path, variant=str(config.get("variant", "A")), train_config=train_config)


def training_split_args(ckpt: Checkpoint, eval_split_flag: float | None) -> tuple[float, list[int] | None]:
    """(eval_split, episodes) of the checkpoint's training run, from its train_config.json."""
    if ckpt.train_config is None:
        if eval_split_flag is None:
            raise EvalOfflineError(
                f"checkpoint {ckpt.path} has no train_config.json, so its training run's held-out episodes are "
                "unknown; pass --eval_split=F with the --dataset.eval_split it was trained with"
            )
        return float(eval_split_flag), None
    ds = ckpt.train_config.get("dataset", {})
    eval_split = float(ds.get("eval_split") or 0.0)
    episodes = ds.get("episodes")
    if eval_split_flag is not None and not math.isclose(eval_split_flag, eval_split):
        raise EvalOfflineError(
            f"--eval_split={eval_split_flag} disagrees with the training run of {ckpt.path} "
            f"(dataset.eval_split={eval_split}); drop the flag to score its real held-out episodes"
        )
    if eval_split <= 0.0:
        raise EvalOfflineError(
            f"checkpoint {ckpt.path} was trained with dataset.eval_split={eval_split}: every episode was used for "
            "training and none is held out; train with --dataset.eval_split=F (e.g. 0.2) to evaluate offline"
        )
    return eval_split, (list(map(int, episodes)) if episodes is not None else None)


def heldout_split(ckpt: Checkpoint, meta, eval_split_flag: float | None = None):
    """The training run's train/held-out episodes (`lerobot_world.splits`, LeRobot's eval_split rule)."""
    from lerobot_world.splits import split_dataset

    eval_split, episodes = training_split_args(ckpt, eval_split_flag)
    try:
        return split_dataset(meta, eval_split, episodes)
    except ValueError as e:
        raise EvalOfflineError(f"checkpoint {ckpt.path}: {e}") from None


def name_checkpoints(ckpts: list[Checkpoint]) -> None:
    """Display names: the variant, plus the run dir/step when two checkpoints share a variant."""
    for c in ckpts:
        p = c.path
        run = (
            f"{p.parents[2].name}/{p.parent.name}"
            if p.name == "pretrained_model" and p.parent.parent.name == "checkpoints"
            else p.name
        )
        c.name = c.variant if sum(o.variant == c.variant for o in ckpts) == 1 else f"{c.variant} ({run})"
    seen: dict[str, int] = {}
    for c in ckpts:  # still ambiguous (same run name): number them
        if c.name in seen:
            seen[c.name] += 1
            c.name = f"{c.name} #{seen[c.name]}"
        else:
            seen[c.name] = 1


def check_dataset_has_policy_inputs(cfg, meta, ckpt_path: Path) -> None:
    """One clear sentence when the dataset lacks a camera (or state/action) the policy reads."""
    cameras = list(meta.camera_keys)
    for key in cfg.image_features:
        if key not in cameras:
            raise EvalOfflineError(
                f"dataset {meta.repo_id} at {meta.root} has no camera {key!r}, which the policy at {ckpt_path} "
                f"uses; its cameras are {cameras}"
            )
    for key in [k for k in cfg.input_features if k not in cfg.image_features] + ["action"]:
        if key not in meta.features:
            raise EvalOfflineError(
                f"dataset {meta.repo_id} at {meta.root} has no feature {key!r}, which the policy at {ckpt_path} uses"
            )
