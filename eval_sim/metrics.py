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
"""

import math
from collections.abc import Mapping, Sequence

import numpy as np

ARM_DIMS = 6


def wilson_interval(n_success: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval for a binomial proportion (None when there are no trials)."""
    if n <= 0:
        return None
    if not 0 <= n_success <= n:
        raise ValueError(f"n_success must be in 0..{n}, got {n_success}")
    from scipy.stats import binomtest

    ci = binomtest(int(n_success), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


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
    Returns (correct[K], copy_correct[K], count[K]).
    """
    obs = np.asarray(observed, dtype=np.int64)
    correct = np.zeros(horizon, dtype=np.int64)
    copy_correct = np.zeros(horizon, dtype=np.int64)
    count = np.zeros(horizon, dtype=np.int64)
    for t, pred in predicted.items():
        pred = np.asarray(pred, dtype=np.int64)
        for k in range(1, min(horizon, pred.shape[0]) + 1):
            if 0 <= t < obs.shape[0] and t + k < obs.shape[0]:
                count[k - 1] += 1
                correct[k - 1] += int(pred[k - 1] == obs[t + k])
                copy_correct[k - 1] += int(obs[t] == obs[t + k])
    return correct, copy_correct, count


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
        correct = np.zeros(horizon, dtype=np.int64)
        copy_correct = np.zeros(horizon, dtype=np.int64)
        count = np.zeros(horizon, dtype=np.int64)
        has_copy = True  # records written before the copy baseline existed lack copy_correct
        for e in episodes:
            w = e.get("world")
            if w:
                correct += np.asarray(w["correct"], dtype=np.int64)
                count += np.asarray(w["count"], dtype=np.int64)
                if w.get("copy_correct") is None:
                    has_copy = False
                else:
                    copy_correct += np.asarray(w["copy_correct"], dtype=np.int64)
        row["world_accuracy"] = {
            str(i + 1): (float(correct[i] / count[i]) if count[i] else None) for i in range(horizon)
        }
        # None where any episode lacks copy counts: a partial sum would not be on the model's pairs.
        row["world_copy_baseline"] = {
            str(i + 1): (float(copy_correct[i] / count[i]) if count[i] and has_copy else None) for i in range(horizon)
        }
        row["world_pairs"] = {str(i + 1): int(count[i]) for i in range(horizon)}
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
