"""The LIBERO init states a checkpoint's training data started from, so eval-sim never scores a policy on them.

Why: eval-sim starts episode e of a task from LIBERO's fixed init state ``init_state_start + e``, and
``lerobot-world demos --init=fixed`` records from the very same fixed init states. A policy evaluated
from the init states its demonstrations started from is scored on its training set (a memorised
trajectory passes as closed-loop success), which DESIGN §5 rules out: closed loop never starts from an
initial condition a training episode used. The overlap is easy to create by accident (it was the main
job's default), so eval-sim checks for it and refuses it unless ``--allow_training_init_states=true``.

How the training init states are learned, without loading the policy:
checkpoint dir (``.../pretrained_model``) -> LeRobot's ``train_config.json`` -> ``dataset.root`` (or
LeRobot's default root for ``dataset.repo_id``) -> the ``results.json`` that ``lerobot-world demos`` writes
at the dataset root -> every *saved* episode (``success`` true: demos writes only those into the dataset)
that started from a fixed init state: ``(suite, task_id, init_id)``. Attempted episodes that failed were
never training data. Random placements (``init_id`` None) cannot coincide with a fixed init state. Every
saved episode counts, also those a ``dataset.eval_split`` held out or a ``dataset.episodes`` subset skipped
(conservative: they are still the checkpoint's dataset).

When that record cannot be found (no ``train_config.json``, a Hub dataset, a dataset not recorded by
``demos``, a ``results.json`` that does not describe the dataset) the training init states are *unknown*:
eval-sim proceeds, prints one line saying so, and results.json records why.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

from eval_sim.errors import EvalSimError

TRAIN_CONFIG = "train_config.json"  # lerobot.configs.train.TRAIN_CONFIG_NAME, saved in every pretrained_model/
FLAG = "--allow_training_init_states=true"
# LIBERO ships this many fixed init states per task in every suite (only used to suggest a free start).
LIBERO_INIT_STATES_PER_TASK = 50


class TrainingInitStatesError(EvalSimError):
    """The evaluation would start from init states the checkpoint's training data used (CLI exit code 2)."""


@dataclass(frozen=True)
class TrainingInitStates:
    """What is known about the fixed init states a checkpoint was trained on."""

    known: bool
    # (suite, task_id, init_id) of every saved training episode that started from a fixed init state.
    states: frozenset = field(default_factory=frozenset)
    # The demos results.json they were read from (known) / why they are unknown (not known).
    source: str | None = None
    reason: str | None = None


def _unknown(reason: str) -> TrainingInitStates:
    return TrainingInitStates(known=False, reason=reason)


def not_a_checkpoint(policy_name: str) -> TrainingInitStates:
    """A policy handed in as a Python object (e.g. the scripted expert): there is no training data to read."""
    return _unknown(f"the policy ({policy_name}) is not a checkpoint directory, so it has no train_config.json to read")


def _default_root(repo_id: str) -> Path:
    from lerobot.utils.constants import HF_LEROBOT_HOME

    return Path(HF_LEROBOT_HOME) / repo_id


def find_training_init_states(policy_path: str | Path) -> TrainingInitStates:
    """Read the training init states of the checkpoint at ``policy_path`` (never raises: unknown + reason)."""
    p = Path(policy_path)
    if (p / "pretrained_model" / TRAIN_CONFIG).is_file():  # a checkpoint step dir, as load_policy_config accepts
        p = p / "pretrained_model"
    tc_path = p / TRAIN_CONFIG
    if not tc_path.is_file():
        return _unknown(f"{p} has no {TRAIN_CONFIG} (not a local lerobot-train checkpoint)")
    try:
        tc = json.loads(tc_path.read_text())
        dataset = tc["dataset"]
        repo_id, root = dataset.get("repo_id"), dataset.get("root")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        return _unknown(f"{tc_path} could not be read as a LeRobot train config with a dataset section ({e!r})")
    if root:
        root = Path(root)
        if not root.is_dir():
            return _unknown(f"the training dataset root {root} (dataset.root in {tc_path}) does not exist here")
    else:
        if not isinstance(repo_id, str) or not repo_id:
            return _unknown(f"{tc_path} names no dataset.repo_id or dataset.root")
        root = _default_root(repo_id)
        if not (root / "results.json").is_file():
            return _unknown(f"the training dataset {repo_id} has no dataset.root and no results.json at {root} "
                            "(a Hub dataset?), so its init states are not recorded")
    return read_demos_results(root)


def read_demos_results(root: Path) -> TrainingInitStates:
    """The fixed init states of the saved episodes of a dataset recorded by ``lerobot-world demos`` at ``root``."""
    path = Path(root) / "results.json"
    if not path.is_file():
        return _unknown(f"the training dataset {root} has no results.json (not recorded by `lerobot-world demos`)")
    try:
        res = json.loads(path.read_text())
        suite = res["suite"]
        episodes = res["episodes"]
        saved = [r for r in episodes if r["success"]]
        states = frozenset((str(suite), int(r["task_id"]), int(r["init_id"])) for r in saved if r["init_id"] is not None)
    except (OSError, ValueError, KeyError, TypeError) as e:
        return _unknown(f"{path} is not the results.json of `lerobot-world demos` (suite, episodes with "
                        f"task_id/init_id/success expected; {e!r})")
    if res.get("physics_only") or "dataset" not in res:
        return _unknown(f"{path} is a physics-only `demos` run (nothing recorded), not the record of this dataset")
    info_path = Path(root) / "meta" / "info.json"
    try:
        total = int(json.loads(info_path.read_text())["total_episodes"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        return _unknown(f"{info_path} could not be read to check {path} against the dataset ({e!r})")
    if total != len(saved):
        return _unknown(f"{path} lists {len(saved)} saved episodes but the dataset has {total}, "
                        "so it does not describe this dataset")
    return TrainingInitStates(known=True, states=states, source=str(path.resolve()))


def find_overlap(
    training: TrainingInitStates, requested: dict[str, list[int]], init_state_start: int, n_episodes: int
) -> list[dict]:
    """The (suite, task_id, init_states) this evaluation would start from that training episodes used."""
    wanted = range(init_state_start, init_state_start + n_episodes)
    out = []
    for suite, task_ids in requested.items():
        for t in task_ids:
            ids = [i for i in wanted if (suite, t, i) in training.states]
            if ids:
                out.append({"suite": suite, "task_id": t, "init_states": ids})
    return out


def _ranges(ids: list[int]) -> str:
    parts, start = [], None
    for a, b in zip(ids, [*ids[1:], None], strict=True):
        start = a if start is None else start
        if b != a + 1:
            parts.append(str(a) if start == a else f"{start}-{a}")
            start = None
    return ", ".join(parts)


def _free_start(training: TrainingInitStates, requested: dict[str, list[int]], n_episodes: int) -> int | None:
    """The smallest init_state_start whose n_episodes init states no training episode of the requested tasks used."""
    for s in range(LIBERO_INIT_STATES_PER_TASK - n_episodes + 1):
        if not find_overlap(training, requested, s, n_episodes):
            return s
    return None


def check_training_init_states(
    training: TrainingInitStates,
    requested: dict[str, list[int]],
    init_state_start: int,
    n_episodes: int,
    *,
    allow: bool,
    policy_path: str | None,
) -> list[dict]:
    """Raise :class:`TrainingInitStatesError` (one sentence) on an overlap unless ``allow``; return the overlap."""
    overlap = find_overlap(training, requested, init_state_start, n_episodes) if training.known else []
    if overlap and not allow:
        where = "; ".join(f"{o['suite']} task {o['task_id']} init state{'s' if len(o['init_states']) > 1 else ''} "
                          f"{_ranges(o['init_states'])}" for o in overlap)
        free = _free_start(training, requested, n_episodes)
        other = (f"start from init states they did not use (e.g. --init_state_start={free})" if free is not None
                 else "evaluate on init states they did not use")
        raise TrainingInitStatesError(
            f"--policy.path={policy_path} was trained on demos that started from the LIBERO init states this "
            f"evaluation would start from ({where}; per {training.source}): {other}, or pass {FLAG} "
            "to score it on its training conditions on purpose."
        )
    return overlap


def results_record(training: TrainingInitStates, overlap: list[dict], allowed: bool) -> dict:
    """The ``training_init_states`` field of eval-sim's results.json."""
    if not training.known:
        return {"known": False, "reason": training.reason}
    return {"known": True, "source": training.source, "n_training_init_states": len(training.states),
            "overlap": overlap, "allow_training_init_states": bool(allowed)}


def describe(record: dict) -> str:
    """One line for the console and results.md (after "training init states: ")."""
    if not record.get("known"):
        return f"unknown, not checked: {record.get('reason')}"
    if record.get("overlap"):
        where = "; ".join(f"{o['suite']} task {o['task_id']} init states {_ranges(o['init_states'])}"
                          for o in record["overlap"])
        return (f"evaluated ON TRAINING INIT STATES ({where}; {FLAG}); checked against "
                f"{record['n_training_init_states']} training init states in {record['source']}")
    n = record["n_training_init_states"]
    if n == 0:
        return f"the training demos started from random placements only, no fixed init state to overlap ({record['source']})"
    return f"no overlap with the {n} fixed init states of the training demos ({record['source']})"
