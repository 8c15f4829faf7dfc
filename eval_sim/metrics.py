"""Closed-loop metrics for eval_sim: pure numpy functions on recorded rollouts (no simulator needed).

Definitions (used by results.json / results.md and documented here once):

* **Success rate** with a 95% **Wilson** score interval (scipy's ``binomtest(...).proportion_ci``).
* **Success within T**: fraction of episodes that succeeded after at most T actions.
* **Goal fraction**: share of the task's BDDL goal predicates true in the final simulator state.
* **Action jerk**: LIBERO's OSC controller takes *delta* pose commands, i.e. the action is a
  velocity command, so jerk is its second difference: ``mean_t,d |a[t+1,d] - 2 a[t,d] + a[t-1,d]|``
  over the arm dimensions (the first 6; the gripper is a binary open/close command whose legitimate
  switches would dominate). Units: action units per step squared.
* **Chunk-boundary jump**: ``|a[t] - a[t-1]|`` averaged over the arm dimensions, split into steps
  ``t >= 1`` where the policy started a new action chunk and steps inside a chunk. An ACT-style
  policy that executes open-loop chunks shows its discontinuities at the boundaries.
* **Closed-loop world accuracy** at horizon k: at a step t where the policy predicted future world
  tokens for t+1..t+K, compare the prediction for t+k with the token the policy observed at t+k
  (only pairs where step t+k was reached inside the episode count).
* **Closed-loop copy baseline** at horizon k: on exactly the same (t, t+k) pairs, how often the token
  observed at t equals the token observed at t+k ("the world does not change"). A model below it
  predicts the rollout's world worse than predicting no change; both low means the world moved.
* **Changed-pair world accuracy**: the same hits restricted to the pairs where the token observed
  at t+k differs from the one observed at t. A policy that sees w_t (variant C) can score the copy
  baseline for free on all pairs; on changed pairs the copy baseline is 0 by definition, so any hit
  there is a predicted change.
* **Top-5 world accuracy** (all pairs and changed pairs): the observed token is among the policy's
  5 most likely tokens for t+k; needs a policy exposing ``last_world_predicted_top5`` (None otherwise).

Success-rate intervals here are per checkpoint (Wilson); the study's intervals with the training seed
as the unit (hierarchical bootstrap, paired differences, McNemar) live in ``lerobot_world.stats`` and
are computed by the report from the per-episode records.
"""

import math
from collections.abc import Mapping, Sequence

import numpy as np

from lerobot_world.stats import rates_per_k, wilson_interval

ARM_DIMS = 6


def default_success_grid(max_steps: int) -> list[int]:
    """T grid for success-within-T: every 100 steps (every quarter for short runs), plus max_steps."""
    step = 100 if max_steps >= 200 else max(1, max_steps // 4)
    grid = list(range(step, max_steps, step)) + [max_steps]
    return sorted(set(grid))


def success_within(successes: Sequence[bool], lengths: Sequence[int], grid: Sequence[int]) -> dict[int, float]:
    """For each T in ``grid``: fraction of episodes that succeeded with episode length <= T."""
    s = np.asarray(successes, dtype=bool)
    lens = np.asarray(lengths, dtype=int)
    if s.shape != lens.shape:
        raise ValueError(f"successes and lengths differ in shape: {s.shape} vs {lens.shape}")
    if s.size == 0:
        return {int(t): float("nan") for t in grid}
    return {int(t): float(np.mean(s & (lens <= t))) for t in grid}


def action_jerk(actions: np.ndarray, dims: int = ARM_DIMS) -> float:
    """Mean absolute second difference of the (velocity-command) actions; NaN if fewer than 3 steps."""
    a = np.asarray(actions, dtype=np.float64)[:, :dims]
    if a.shape[0] < 3:
        return float("nan")
    return float(np.mean(np.abs(a[2:] - 2.0 * a[1:-1] + a[:-2])))


def chunk_boundary_jumps(actions: np.ndarray, chunk_start: Sequence[bool], dims: int = ARM_DIMS) -> dict:
    """Mean |a_t - a_{t-1}| (over arm dims) at steps that started a new chunk vs steps inside a chunk.

    ``chunk_start[t]`` is True when the policy computed a new chunk at step t. Step 0 has no previous
    action and is not counted. Returns NaN for a side with no steps.
    """
    a = np.asarray(actions, dtype=np.float64)[:, :dims]
    starts = np.asarray(chunk_start, dtype=bool)
    if starts.shape[0] != a.shape[0]:
        raise ValueError(f"chunk_start has {starts.shape[0]} steps but actions have {a.shape[0]}")
    if a.shape[0] < 2:
        return {"boundary": float("nan"), "within": float("nan"), "n_boundary": 0, "n_within": 0}
    jumps = np.mean(np.abs(a[1:] - a[:-1]), axis=1)  # jumps[i] is the jump into step i+1
    at = starts[1:]
    return {
        "boundary": float(jumps[at].mean()) if at.any() else float("nan"),
        "within": float(jumps[~at].mean()) if (~at).any() else float("nan"),
        "n_boundary": int(at.sum()),
        "n_within": int((~at).sum()),
    }


def world_accuracy_counts(
    observed: Sequence[int], predicted: Mapping[int, Sequence[int]], horizon: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closed-loop world-token hits, copy-baseline hits and counts per horizon k = 1..horizon for one episode.

    ``observed[t]`` is the token of the frame the policy saw at step t (t = 0..L-1); ``predicted[t]``
    holds the tokens predicted at step t for t+1..t+len(predicted[t]). The copy baseline is scored on
    the same pairs as the model (observed[t] == observed[t+k]), so the two are directly comparable.
    Returns (correct[K], copy_correct[K], count[K]); ``world_accuracy_details`` adds changed pairs and top-5.
    """
    d = world_accuracy_details(observed, predicted, horizon)
    return d["correct"], d["copy_correct"], d["count"]


def world_accuracy_details(
    observed: Sequence[int],
    predicted: Mapping[int, Sequence[int]],
    horizon: int,
    predicted_top5: Mapping[int, Sequence[Sequence[int]]] | None = None,
) -> dict[str, np.ndarray | None]:
    """Per horizon k = 1..horizon, for one episode: the counts of ``world_accuracy_counts`` plus

    * ``changed_count`` / ``changed_correct``: the pairs where observed[t+k] != observed[t] (the copy
      baseline scores 0 there by definition, so a hit is a predicted change) and the model's hits on them;
    * ``top5_correct`` / ``changed_top5_correct``: the token observed at t+k is among the 5 predicted
      for it (``predicted_top5[t]`` of shape (K', 5)), on all and on changed pairs; None without top-5.
    """
    obs = np.asarray(observed, dtype=np.int64)
    z = lambda: np.zeros(horizon, dtype=np.int64)  # noqa: E731
    out = {"correct": z(), "copy_correct": z(), "count": z(), "changed_count": z(), "changed_correct": z()}
    has5 = predicted_top5 is not None
    top5_correct, changed_top5 = z(), z()
    for t, pred in predicted.items():
        pred = np.asarray(pred, dtype=np.int64)
        top5 = np.asarray(predicted_top5[t], dtype=np.int64) if has5 else None
        for k in range(1, min(horizon, pred.shape[0]) + 1):
            if not (0 <= t < obs.shape[0] and t + k < obs.shape[0]):
                continue
            target, changed = obs[t + k], obs[t] != obs[t + k]
            hit = int(pred[k - 1] == target)
            out["count"][k - 1] += 1
            out["correct"][k - 1] += hit
            out["copy_correct"][k - 1] += int(not changed)
            if changed:
                out["changed_count"][k - 1] += 1
                out["changed_correct"][k - 1] += hit
            if has5:
                hit5 = int(bool((top5[k - 1] == target).any()))
                top5_correct[k - 1] += hit5
                changed_top5[k - 1] += hit5 if changed else 0
    out["top5_correct"] = top5_correct if has5 else None
    out["changed_top5_correct"] = changed_top5 if has5 else None
    return out


def safe_mean(values) -> float | None:
    """Mean of the finite values, None if there are none (JSON-friendly)."""
    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    return float(np.mean(v)) if v else None


def aggregate_episodes(episodes: Sequence[dict], grid: Sequence[int], horizon: int | None) -> dict:
    """Aggregate per-episode records (as written to results.json) into one table row."""
    n = len(episodes)
    succ = [bool(e["success"]) for e in episodes]
    lens = [int(e["length"]) for e in episodes]
    k = sum(succ)
    ci = wilson_interval(k, n)
    row = {
        "n_episodes": n,
        "n_success": k,
        "success_rate": k / n if n else None,
        "ci95": list(ci) if ci else None,
        "mean_length": safe_mean(lens),
        "mean_length_success": safe_mean([l for l, s in zip(lens, succ, strict=True) if s]),
        "success_within": {str(t): v for t, v in success_within(succ, lens, grid).items()} if n else {},
        "goal_fraction": safe_mean([e.get("goal_fraction") for e in episodes]),
        "jerk": safe_mean([e.get("jerk") for e in episodes]),
        "chunk_jump_boundary": _pooled_jump(episodes, "boundary"),
        "chunk_jump_within": _pooled_jump(episodes, "within"),
    }
    if horizon:
        row.update(_world_aggregate(episodes, horizon))
    return row


WORLD_DEFINITIONS = {
    "world_changed_accuracy": "world_accuracy on the pairs where the token observed at t+k differs from the one "
    "observed at t (the copy baseline is 0 there by definition)",
    "world_top5_accuracy": "the token observed at t+k is among the 5 most likely tokens predicted at t for t+k",
    "world_changed_top5_accuracy": "world_top5_accuracy on the changed pairs",
}

# Per-episode world fields -> aggregated per-k rate (numerator, denominator). A rate is None where any
# episode with a world record lacks its numerator (records written before the field existed): a
# partial sum would not be on the model's pairs.
WORLD_RATES = {
    "world_accuracy": ("correct", "count"),
    "world_copy_baseline": ("copy_correct", "count"),
    "world_changed_accuracy": ("changed_correct", "changed_count"),
    "world_top5_accuracy": ("top5_correct", "count"),
    "world_changed_top5_accuracy": ("changed_top5_correct", "changed_count"),
}


def _world_aggregate(episodes: Sequence[dict], horizon: int) -> dict:
    records = [e["world"] for e in episodes if e.get("world")]
    fields = {"correct", "count", "copy_correct", "changed_correct", "changed_count", "top5_correct", "changed_top5_correct"}
    sums = {}
    for f in fields:
        if all(w.get(f) is not None for w in records):
            sums[f] = np.sum([np.asarray(w[f], dtype=np.int64) for w in records], axis=0) if records else np.zeros(horizon, np.int64)
        else:
            sums[f] = None
    row = {}
    for name, (num, den) in WORLD_RATES.items():
        n, d = sums[num], sums[den]
        row[name] = rates_per_k(n, d) if n is not None and d is not None else {str(i + 1): None for i in range(horizon)}
    row["world_pairs"] = {str(i + 1): int(sums["count"][i]) for i in range(horizon)}
    changed = sums["changed_count"]
    row["world_changed_pairs"] = {str(i + 1): (int(changed[i]) if changed is not None else None) for i in range(horizon)}
    return row


def _pooled_jump(episodes: Sequence[dict], side: str) -> float | None:
    """Step-weighted mean of per-episode chunk jumps (pooled over all steps of that side)."""
    total, n = 0.0, 0
    for e in episodes:
        cj = e.get("chunk_jump")
        if not cj or not cj.get(f"n_{side}"):
            continue
        total += cj[side] * cj[f"n_{side}"]
        n += cj[f"n_{side}"]
    return total / n if n else None
