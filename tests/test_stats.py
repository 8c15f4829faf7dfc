"""lerobot_world.stats: Wilson, the hierarchical (seed, then episode) bootstrap, paired differences, McNemar."""

import math

import numpy as np
import pytest

from lerobot_world import stats


def test_wilson_interval_matches_hand_computation():
    # p = 0.3, n = 10, z = 1.959964: centre (p + z²/2n)/(1 + z²/n), half-width z*sqrt(p(1-p)/n + z²/4n²)/(1 + z²/n)
    z = 1.959963984540054
    p, n = 0.3, 10
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo, hi = stats.wilson_interval(3, 10)
    assert lo == pytest.approx(centre - half, abs=1e-9) and hi == pytest.approx(centre + half, abs=1e-9)
    assert (lo, hi) == pytest.approx((0.10779, 0.60322), abs=1e-5)
    # Edge cases: 0/n and n/n stay inside [0, 1] and are not degenerate (unlike the Wald interval).
    lo0, hi0 = stats.wilson_interval(0, 5)
    assert lo0 == pytest.approx(0.0, abs=1e-12) and hi0 == pytest.approx(z * z / (5 + z * z))
    lo5, hi5 = stats.wilson_interval(5, 5)
    assert hi5 == pytest.approx(1.0) and lo5 == pytest.approx(5 / (5 + z * z))
    assert stats.wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        stats.wilson_interval(6, 5)


def _bernoulli(p: float, n: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < p).astype(float)


def test_bootstrap_is_deterministic_per_seed():
    seeds = [0] * 12 + [1] * 12
    strata = [i % 3 for i in range(24)]
    w0 = stats.hierarchical_weights(seeds, strata, 300, rng_seed=7)
    assert np.array_equal(w0, stats.hierarchical_weights(seeds, strata, 300, rng_seed=7))
    assert not np.array_equal(w0, stats.hierarchical_weights(seeds, strata, 300, rng_seed=8))
    x = np.random.default_rng(0).random(24)  # continuous: percentiles of two resample sets differ
    a = stats.hierarchical_bootstrap(x, None, seeds, strata, rng_seed=3)
    assert a == stats.hierarchical_bootstrap(x, None, seeds, strata, rng_seed=3)
    assert a["ci95"] != stats.hierarchical_bootstrap(x, None, seeds, strata, rng_seed=4)["ci95"]
    flat = stats.bootstrap_weights(10, 50, seed=1)
    assert np.array_equal(flat, stats.bootstrap_weights(10, 50, seed=1)) and flat.sum(1).tolist() == [10.0] * 50


def test_hierarchical_weights_resample_seeds_then_units_within_strata():
    seeds = [0] * 6 + [1] * 6 + [2] * 6
    strata = [0, 0, 0, 1, 1, 1] * 3
    W = stats.hierarchical_weights(seeds, strata, 500, rng_seed=0)
    seed_of = np.array(seeds)
    stratum_of = np.array(strata)
    per_seed = np.stack([W[:, seed_of == s].sum(1) for s in range(3)], 1)  # (B, S)
    # a seed drawn m times contributes m full resamples of each stratum: 3 units per stratum -> 3m each
    mult = per_seed / 6
    assert np.array_equal(mult, np.round(mult)) and (mult.sum(1) == 3).all()
    assert (mult == 0).any() and (mult >= 2).any()  # seeds really are dropped and duplicated
    for s in range(3):
        for g in (0, 1):
            cols = (seed_of == s) & (stratum_of == g)
            assert np.array_equal(W[:, cols].sum(1), 3 * mult[:, s])
    # one seed: the seed level is fixed, units still resampled within strata (the episode bootstrap)
    W1 = stats.hierarchical_weights([0] * 6, strata[:6], 200, rng_seed=0)
    assert (W1[:, :3].sum(1) == 3).all() and (W1[:, 3:].sum(1) == 3).all() and W1.std(0).min() > 0


def test_between_seed_variance_widens_the_interval_against_pooling():
    """Four seeds whose success rates differ a lot: resampling seeds shows it, pooling the episodes hides it."""
    rates = (0.9, 0.1, 0.8, 0.2)
    x = np.concatenate([_bernoulli(p, 20, i) for i, p in enumerate(rates)])
    seeds = [s for s in range(4) for _ in range(20)]
    hier = stats.hierarchical_bootstrap(x, None, seeds, rng_seed=0)
    pooled = stats.hierarchical_bootstrap(x, None, [0] * 80, rng_seed=0)
    assert hier["value"] == pooled["value"]
    width = lambda r: r["ci95"][1] - r["ci95"][0]  # noqa: E731
    assert width(hier) > 2 * width(pooled), (hier, pooled)
    assert hier["n_seeds"] == 4 and not hier["one_seed"] and pooled["one_seed"]


def test_ratio_metric_is_the_pooled_ratio_of_sums():
    se = np.array([1.0, 2.0, 3.0, 4.0, 10.0, 0.5])
    n = np.array([10, 10, 20, 20, 40, 5])
    r = stats.hierarchical_bootstrap(se, n, [0, 0, 0, 1, 1, 1], rng_seed=0)
    assert r["value"] == pytest.approx(se.sum() / n.sum())
    assert r["ci95"][0] <= r["value"] <= r["ci95"][1]


def test_paired_difference_excludes_zero_for_a_clear_effect_and_not_for_none():
    seeds = [s for s in range(3) for _ in range(30)]
    strata = [i % 3 for i in range(90)]
    better = np.concatenate([_bernoulli(0.8, 30, 10 + s) for s in range(3)])
    worse = np.concatenate([_bernoulli(0.3, 30, 20 + s) for s in range(3)])
    same = np.concatenate([_bernoulli(0.5, 30, 30 + s) for s in range(3)])
    same2 = np.concatenate([_bernoulli(0.5, 30, 40 + s) for s in range(3)])
    effect = stats.paired_difference(better, None, worse, None, seeds, strata, rng_seed=0)
    assert effect["excludes_zero"] is True and effect["ci95"][0] > 0
    assert effect["value"] == pytest.approx(better.mean() - worse.mean())
    assert effect["a"] == pytest.approx(better.mean()) and effect["n_units"] == 90
    null = stats.paired_difference(same, None, same2, None, seeds, strata, rng_seed=0)
    assert null["excludes_zero"] is False and null["ci95"][0] < 0 < null["ci95"][1]
    # the same resample is applied to both arms: identical arms give exactly [0, 0]
    ident = stats.paired_difference(same, None, same, None, seeds, strata, rng_seed=0)
    assert ident["value"] == 0 and ident["ci95"] == [0.0, 0.0]


def test_mcnemar_matches_a_hand_computed_binomial_p_value():
    # 7 pairs a-only, 2 pairs b-only, 5 concordant: p = 2 * P(X <= 2 | n=9, 1/2) = 2 * (1 + 9 + 36) / 512
    a = [True] * 7 + [False] * 2 + [True] * 3 + [False] * 2
    b = [False] * 7 + [True] * 2 + [True] * 3 + [False] * 2
    r = stats.mcnemar_exact(a, b)
    assert (r["b"], r["c"], r["n_pairs"]) == (7, 2, 14)
    assert r["p_value"] == pytest.approx(92 / 512, abs=1e-12)
    assert stats.mcnemar_exact([True, False], [True, False])["p_value"] == 1.0
    with pytest.raises(ValueError, match="differ in length"):
        stats.mcnemar_exact([True], [True, False])


def test_n_too_small_rule():
    assert stats.MIN_UNITS == 5
    three = stats.hierarchical_bootstrap([0.1, 0.2, 0.3], [1, 1, 1], [0, 0, 0], rng_seed=0)
    assert three["too_small"] and three["ci95"] is None and three["value"] == pytest.approx(0.2)
    five = stats.hierarchical_bootstrap([0.1, 0.2, 0.3, 0.4, 0.5], None, [0] * 5, rng_seed=0)
    assert not five["too_small"] and five["ci95"] is not None
    # one seed, every unit alone in its stratum: stratified resampling cannot move anything
    alone = stats.hierarchical_bootstrap([0.1, 0.2, 0.3, 0.4, 0.5], None, [0] * 5, [0, 1, 2, 3, 4], rng_seed=0)
    assert alone["too_small"] and alone["ci95"] is None
    # the same units over two seeds: the seed level resamples them
    assert not stats.too_small([0, 0, 1, 1, 1], [0, 1, 2, 3, 4])
    pair = stats.paired_difference([1, 1, 1], None, [0, 0, 0], None, [0, 0, 0])
    assert pair["too_small"] and pair["ci95"] is None and pair["excludes_zero"] is None and pair["value"] == 1.0


def test_match_units_and_bad_input():
    common, only_a, only_b = stats.match_units({(0, 1): 1, (0, 2): 0, (1, 10): 1}, {(0, 2): 1, (1, 10): 0, (2, 9): 1})
    assert common == [(0, 2), (1, 10)] and only_a == [(0, 1)] and only_b == [(2, 9)]
    with pytest.raises(ValueError, match="one entry per unit"):
        stats.hierarchical_bootstrap([1, 0], None, [0, 0, 0])
    with pytest.raises(ValueError, match="differ in length"):
        stats.hierarchical_weights([0, 0], [1], 10)
    assert stats.sort_key(2) < stats.sort_key(10) < stats.sort_key("a")
