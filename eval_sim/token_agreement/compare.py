"""Live vs table tokens, episode by episode, and the world-prediction summary: pure functions (no simulator).
"""

from collections import Counter

import numpy as np

from eval_sim.token_agreement.config import TOP_PAIRS
from lerobot_world.stats import mean_over_k, rates_per_k


def compare_episode(
    table_tokens, live_tokens, decoded_tokens, live_states, recorded_states, live_pixels, decoded_pixels
) -> dict:
    """One episode's numbers. Tokens are int sequences [T]; states float [T, S]; pixels uint8-valued [T, ...]."""
    table = np.asarray(table_tokens, dtype=np.int64)
    live = np.asarray(live_tokens, dtype=np.int64)
    dec = np.asarray(decoded_tokens, dtype=np.int64)
    if not (len(table) == len(live) == len(dec) == len(live_states) == len(recorded_states) == len(live_pixels) == len(decoded_pixels)):
        raise ValueError("compare_episode: every per-frame sequence must have the same length")
    n = len(table)
    same = live == table
    mism = np.flatnonzero(~same)
    # A mismatch whose live token is the table token of the previous or next frame: a frame near a
    # codebook boundary that the live image crossed one step early or late.
    adjacent = sum(
        1 for t in mism if (t > 0 and live[t] == table[t - 1]) or (t + 1 < n and live[t] == table[t + 1])
    )
    ds = np.abs(np.asarray(live_states, dtype=np.float64) - np.asarray(recorded_states, dtype=np.float64))
    dp = np.abs(np.asarray(live_pixels, dtype=np.float64) - np.asarray(decoded_pixels, dtype=np.float64))
    per_frame_pix = dp.reshape(n, -1).mean(1) if n else np.zeros(0)
    return {
        "frames": n,
        "agree": int(same.sum()),
        "agreement": float(same.mean()) if n else None,
        "mismatches": [[int(t), int(table[t]), int(live[t])] for t in mism],  # [frame_index, table, live]
        "mismatch_adjacent": int(adjacent),
        "first_mismatch": int(mism[0]) if len(mism) else None,
        "decoded_agree": int((dec == table).sum()),
        "state_max_abs_err": float(ds.max()) if ds.size else 0.0,
        "pixel_mean_abs_diff": float(dp.mean()) if dp.size else 0.0,
        "pixel_max_abs_diff": float(dp.max()) if dp.size else 0.0,
        "pixel_identical_frames": int((per_frame_pix == 0).sum()),
    }


def summarize(episodes: list[dict], top_k: int = TOP_PAIRS) -> dict:
    """Overall numbers from ``compare_episode`` results (each with ``episode_index`` added)."""
    frames = sum(e["frames"] for e in episodes)
    agree = sum(e["agree"] for e in episodes)
    pairs = Counter((tab, live) for e in episodes for _, tab, live in e["mismatches"])
    n_mis = frames - agree
    return {
        "episodes": len(episodes),
        "frames": frames,
        "agree": agree,
        "agreement": agree / frames if frames else None,
        "mismatches": n_mis,
        "mismatch_adjacent": sum(e["mismatch_adjacent"] for e in episodes),
        "distinct_mismatch_pairs": len(pairs),
        "top_pairs": [{"table": int(a), "live": int(b), "count": int(c)} for (a, b), c in pairs.most_common(top_k)],
        "decoded_agree": sum(e["decoded_agree"] for e in episodes),
        "decoded_agreement": sum(e["decoded_agree"] for e in episodes) / frames if frames else None,
        "state_max_abs_err": max((e["state_max_abs_err"] for e in episodes), default=0.0),
        # frame-weighted mean over episodes = mean over all pixels (same image size everywhere)
        "pixel_mean_abs_diff": (sum(e["pixel_mean_abs_diff"] * e["frames"] for e in episodes) / frames) if frames else 0.0,
        "pixel_max_abs_diff": max((e["pixel_max_abs_diff"] for e in episodes), default=0.0),
        "pixel_identical_frames": sum(e["pixel_identical_frames"] for e in episodes),
    }


def world_summary(correct, copy_correct, count) -> dict:
    """Per-k world accuracy and copy baseline (same pairs) from hit counts [K], and both means over the
    horizons that have pairs (as eval-sim's report averages them: the two means cover the same k)."""
    correct, copy_correct, count = (np.asarray(x, dtype=np.int64) for x in (correct, copy_correct, count))
    if not (correct.shape == copy_correct.shape == count.shape) or correct.ndim != 1:
        raise ValueError("world_summary: correct, copy_correct and count must be 1-d arrays of the same length K")
    ks = [str(i + 1) for i in range(len(count)) if count[i] > 0]
    acc, copy = rates_per_k(correct, count), rates_per_k(copy_correct, count)
    return {
        "correct": correct.tolist(),
        "copy_correct": copy_correct.tolist(),
        "count": count.tolist(),
        "world_accuracy": acc,
        "world_copy_baseline": copy,
        "mean": mean_over_k(acc, ks),
        "copy_mean": mean_over_k(copy, ks),
        "pairs": int(count.sum()),
    }


def pool_world(records: list[dict]) -> dict:
    """Overall policy numbers: hit counts summed over episodes (pairs pooled), then ``world_summary``."""
    if not records:
        raise ValueError("pool_world: no episodes")
    keys = ("correct", "copy_correct", "count")
    sums = [np.sum([np.asarray(r[k], dtype=np.int64) for r in records], axis=0) for k in keys]
    return world_summary(*sums) | {
        "n_predictions": sum(r["n_predictions"] for r in records),
        "observed_equals_live": sum(r["observed_equals_live"] for r in records),
        "frames": sum(r["frames"] for r in records),
    }
