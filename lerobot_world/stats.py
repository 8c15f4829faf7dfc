"""The study's statistics, in one place (numpy/scipy only; no torch, no LeRobot, no eval_sim).

The unit of the study is the *training seed* (DESIGN §5): a checkpoint is one draw of a method, and
the episodes scored on it are draws within that checkpoint. Everything here follows from that:

* **Per-arm interval** (``hierarchical_bootstrap``): resample the seeds with replacement, then, inside
  each resampled seed, resample its episodes with replacement within strata (the task), and recompute
  the pooled ratio ``sum(num) / sum(den)``. Success rates are ratios with ``num`` = 0/1 per episode and
  ``den`` = 1; offline MSE is ``sum(se_sum) / sum(n_values)`` over held-out episodes. With one seed the
  seed level has nothing to resample and this is the (stratified) episode bootstrap: the interval then
  describes one checkpoint, not the method (callers say so: ``ONE_SEED``).
* **Paired difference** (``paired_difference``): two arms scored on matched units (the same seed, task,
  init state and env seed in closed loop; the same held-out episode offline). The *same* resampling
  weights are applied to both arms' matched units, so the interval is that of the difference, not two
  intervals compared by eye (overlap of two 95% intervals is neither necessary nor sufficient for a
  difference).
* **McNemar's exact test** (``mcnemar_exact``) for paired binary outcomes: a two-sided binomial test of
  the discordant pairs (b of one kind, c of the other) against p = 1/2.
* **Wilson interval** for one binomial proportion (one checkpoint's success rate).

``MIN_UNITS``: below this many resampled units no interval is given (``ci95`` None, ``too_small``
True; tables print ``TOO_SMALL``). A percentile bootstrap over n units has at most C(2n-1, n) distinct
resamples: 10 for n = 3, 35 for n = 4, 126 for n = 5; with 3 units its 2.5/97.5 percentiles are two of
ten values and can coincide (the previous report printed an offline MSE of 0.109 [0.109, 0.109] from 3
held-out episodes). Five is the smallest n whose resample distribution is not a handful of points; it
is a floor against meaningless intervals, not a claim that 5 units give good coverage. Units in a
stratum of one unit never vary under stratified resampling, so with one seed only the units in strata
of two or more count towards ``MIN_UNITS``.

Every bootstrap is seeded (``rng_seed``) and deterministic given the unit order; callers pass units in
a sorted order so that a report built twice is byte-identical.
"""

import numbers
from collections.abc import Hashable, Mapping, Sequence

import numpy as np

MIN_UNITS = 5
N_BOOTSTRAP = 2000
CONFIDENCE = 0.95
TOO_SMALL = "n too small"
ONE_SEED = "one seed: checkpoints, not methods"


# ----------------------------------------------------------------------------------------------------
# one binomial proportion
# ----------------------------------------------------------------------------------------------------


def wilson_interval(n_success: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Wilson score interval for a binomial proportion (None when there are no trials)."""
    if n <= 0:
        return None
    if not 0 <= n_success <= n:
        raise ValueError(f"n_success must be in 0..{n}, got {n_success}")
    from scipy.stats import binomtest

    ci = binomtest(int(n_success), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


# ----------------------------------------------------------------------------------------------------
# resampling weights
# ----------------------------------------------------------------------------------------------------


def ratio(num, den) -> float | None:
    """sum(num) / sum(den), None when the denominator is 0."""
    n, d = float(np.sum(num)), float(np.sum(den))
    return n / d if d > 0 else None


def rates_per_k(num, den) -> dict[str, float | None]:
    """World accuracy per horizon: hit counts [K] over pair counts [K] -> {"1": rate, ..., "K": rate}, None
    where a horizon has no pairs. The one place the closed-loop, token-agreement and report numbers come from."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    if num.shape != den.shape or num.ndim != 1:
        raise ValueError(f"rates_per_k: hits and pairs must be 1-d arrays of the same length, got {num.shape} and {den.shape}")
    return {str(i + 1): (float(num[i] / den[i]) if den[i] else None) for i in range(len(den))}


def mean_over_k(per_k: dict | None, ks) -> float | None:
    """Mean of a per-k rate over the horizons ``ks`` (each horizon counts once); None unless all are defined."""
    vals = [(per_k or {}).get(k) for k in ks]
    return float(sum(vals) / len(vals)) if ks and all(v is not None for v in vals) else None


def bootstrap_weights(n_units: int, n_bootstrap: int, seed: int) -> np.ndarray | None:
    """(n_bootstrap, n_units) multiplicities of units resampled with replacement (flat, seeded)."""
    if n_bootstrap <= 0 or n_units < 1:
        return None
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=n_bootstrap).astype(np.float64)


def sort_key(x):
    """A total, deterministic order over unit labels: None, numbers (numerically), strings, tuples."""
    if x is None:
        return (0,)
    if isinstance(x, numbers.Number):
        return (1, float(x), repr(x))
    if isinstance(x, str):
        return (2, x)
    if isinstance(x, tuple):
        return (3, tuple(sort_key(i) for i in x))
    return (4, repr(x))


def _codes(labels: Sequence[Hashable]) -> np.ndarray:
    """Integer codes of labels, in a deterministic order (``sort_key``)."""
    uniq = sorted(set(labels), key=sort_key)
    index = {u: i for i, u in enumerate(uniq)}
    return np.array([index[x] for x in labels], dtype=np.int64)


def hierarchical_weights(
    seeds: Sequence[Hashable],
    strata: Sequence[Hashable] | None = None,
    n_bootstrap: int = N_BOOTSTRAP,
    rng_seed: int = 0,
) -> np.ndarray | None:
    """(n_bootstrap, n_units) multiplicities of a two-level bootstrap: seeds, then units within (seed, stratum).

    Each replicate draws len(unique seeds) seeds with replacement; a seed drawn m times contributes m
    independent resamples of each of its strata, i.e. its n_g units of stratum g get
    Multinomial(m * n_g, 1/n_g) counts (a sum of m multinomials with the same probabilities).
    """
    n = len(seeds)
    if n_bootstrap <= 0 or n < 1:
        return None
    if strata is not None and len(strata) != n:
        raise ValueError(f"seeds and strata differ in length: {n} vs {len(strata)}")
    seed_code = _codes(list(seeds))
    stratum_code = _codes(list(strata)) if strata is not None else np.zeros(n, dtype=np.int64)
    n_seeds = int(seed_code.max()) + 1
    rng = np.random.default_rng(rng_seed)
    # (B, S) multiplicity of each seed; with one seed it is always 1 (no seed-level variation).
    seed_mult = rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=n_bootstrap)
    W = np.zeros((n_bootstrap, n), dtype=np.float64)
    groups = sorted({(int(s), int(g)) for s, g in zip(seed_code, stratum_code, strict=True)})
    for s, g in groups:
        members = np.flatnonzero((seed_code == s) & (stratum_code == g))
        k = len(members)
        W[:, members] = rng.multinomial(seed_mult[:, s] * k, np.full(k, 1.0 / k))
    return W


def resampled_units(seeds: Sequence[Hashable], strata: Sequence[Hashable] | None = None) -> int:
    """Units that vary under resampling: with one seed, those in (seed, stratum) groups of >= 2 units;
    with several seeds, all of them (the seed level moves every unit)."""
    n = len(seeds)
    if n == 0:
        return 0
    if len(set(seeds)) > 1:
        return n
    keys = list(strata) if strata is not None else [0] * n
    counts: dict = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    return sum(c for c in counts.values() if c >= 2)


def too_small(seeds: Sequence[Hashable], strata: Sequence[Hashable] | None = None, min_units: int = MIN_UNITS) -> bool:
    """True when an interval over these units would not be printed (see MIN_UNITS)."""
    return len(seeds) < min_units or resampled_units(seeds, strata) < min_units


def _percentile_ci(values: np.ndarray, confidence: float) -> list[float] | None:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    a = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(values, [a, 100 - a])
    return [float(lo), float(hi)]


def ratio_ci(num: np.ndarray, den: np.ndarray, weights: np.ndarray | None, confidence: float = CONFIDENCE) -> list[float] | None:
    """Percentile interval of sum(num)/sum(den) over resamples (per-unit sums in; weights (B, n_units))."""
    if weights is None:
        return None
    n, d = weights @ np.asarray(num, dtype=np.float64), weights @ np.asarray(den, dtype=np.float64)
    ok = d > 0
    if not ok.any():
        return None
    return _percentile_ci(n[ok] / d[ok], confidence)


# ----------------------------------------------------------------------------------------------------
# per-arm interval and paired difference
# ----------------------------------------------------------------------------------------------------


def _as_units(num, den, seeds, strata) -> tuple[np.ndarray, np.ndarray]:
    num = np.asarray(num, dtype=np.float64).reshape(-1)
    den = np.ones_like(num) if den is None else np.asarray(den, dtype=np.float64).reshape(-1)
    if not (num.shape == den.shape and num.shape[0] == len(seeds)):
        raise ValueError(
            f"num, den and seeds must have one entry per unit: got {num.shape[0]}, {den.shape[0]}, {len(seeds)}"
        )
    if strata is not None and len(strata) != len(seeds):
        raise ValueError(f"seeds and strata differ in length: {len(seeds)} vs {len(strata)}")
    return num, den


def _summary(value, ci, seeds, strata, min_units) -> dict:
    small = too_small(seeds, strata, min_units)
    return {
        "value": value,
        "ci95": None if small else ci,
        "n_units": len(seeds),
        "n_seeds": len(set(seeds)),
        "seeds": sorted(set(seeds), key=sort_key),
        "too_small": small,
        "one_seed": len(set(seeds)) == 1,
    }


def hierarchical_bootstrap(
    num,
    den,
    seeds: Sequence[Hashable],
    strata: Sequence[Hashable] | None = None,
    *,
    n_bootstrap: int = N_BOOTSTRAP,
    rng_seed: int = 0,
    min_units: int = MIN_UNITS,
    confidence: float = CONFIDENCE,
) -> dict:
    """Pooled ratio sum(num)/sum(den) over units, with its hierarchical-bootstrap interval.

    ``num``/``den`` hold one entry per unit (episode): success 0/1 and 1, or an episode's squared-error
    sum and value count. ``seeds[i]`` is the training seed of unit i, ``strata[i]`` its task. Returns
    {value, ci95 (None when too small), n_units, n_seeds, seeds, too_small, one_seed}.
    """
    seeds = list(seeds)
    num, den = _as_units(num, den, seeds, strata)
    W = hierarchical_weights(seeds, strata, n_bootstrap, rng_seed)
    return _summary(ratio(num, den), ratio_ci(num, den, W, confidence), seeds, strata, min_units)


def paired_difference(
    num_a,
    den_a,
    num_b,
    den_b,
    seeds: Sequence[Hashable],
    strata: Sequence[Hashable] | None = None,
    *,
    n_bootstrap: int = N_BOOTSTRAP,
    rng_seed: int = 0,
    min_units: int = MIN_UNITS,
    confidence: float = CONFIDENCE,
) -> dict:
    """ratio(a) - ratio(b) on matched units, the same hierarchical resample applied to both arms.

    Unit i of a and unit i of b are the same episode (seed, task, init state / held-out episode). Returns
    {value, ci95, n_units, n_seeds, seeds, too_small, one_seed, a, b, excludes_zero} where a and b are the
    two ratios on the matched units and excludes_zero is None when there is no interval.
    """
    seeds = list(seeds)
    num_a, den_a = _as_units(num_a, den_a, seeds, strata)
    num_b, den_b = _as_units(num_b, den_b, seeds, strata)
    ra, rb = ratio(num_a, den_a), ratio(num_b, den_b)
    value = None if ra is None or rb is None else ra - rb
    W = hierarchical_weights(seeds, strata, n_bootstrap, rng_seed)
    ci = None
    if W is not None:
        da, db = W @ den_a, W @ den_b
        ok = (da > 0) & (db > 0)
        if ok.any():
            ci = _percentile_ci((W @ num_a)[ok] / da[ok] - (W @ num_b)[ok] / db[ok], confidence)
    out = _summary(value, ci, seeds, strata, min_units)
    out.update(a=ra, b=rb, excludes_zero=None if out["ci95"] is None else bool(out["ci95"][0] > 0 or out["ci95"][1] < 0))
    return out


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> dict:
    """McNemar's exact test on paired binary outcomes (two-sided binomial test of the discordant pairs).

    b_count = pairs where a succeeded and b failed, c_count = the reverse; p = 1.0 with no discordant pair.
    """
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes differ in length: {a.shape[0]} vs {b.shape[0]}")
    n_b, n_c = int((a & ~b).sum()), int((~a & b).sum())
    if n_b + n_c == 0:
        p = 1.0
    else:
        from scipy.stats import binomtest

        p = float(binomtest(n_b, n_b + n_c, 0.5).pvalue)
    return {"b": n_b, "c": n_c, "n_pairs": int(a.size), "p_value": p}


def match_units(a: Mapping[Hashable, object], b: Mapping[Hashable, object]) -> tuple[list, list, list]:
    """(sorted keys in both, keys only in a, keys only in b): the matched units of two arms."""
    common = sorted(set(a) & set(b), key=sort_key)
    return common, sorted(set(a) - set(b), key=sort_key), sorted(set(b) - set(a), key=sort_key)
