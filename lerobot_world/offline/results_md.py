"""results.md of eval-offline: the human-readable twin of results.json.

Pure formatting of the results dict (no torch, no dataset), so it can be re-rendered from a saved
results.json and tested on its own.
"""

from lerobot_world.stats import MIN_UNITS, TOO_SMALL
from lerobot_world.vocabulary import CORRUPTIONS, MISSING


def _f(x, nd=4) -> str:
    if x is None:
        return MISSING
    if isinstance(x, float) and (abs(x) >= 1e4 or (0 < abs(x) < 1e-3)):
        return f"{x:.3e}"
    return f"{x:.{nd}f}"


def _ci(m: dict, nd=4, small: bool = False) -> str:
    """value [lo, hi]; "value (n too small)" where the interval was withheld for too few episodes."""
    s = _f(m.get("value"), nd)
    ci = m.get("ci95")
    if ci:
        return s + f" [{_f(ci[0], nd)}, {_f(ci[1], nd)}]"
    return s + (f" ({TOO_SMALL})" if small and m.get("value") is not None else "")


def _small(c: dict) -> bool:
    """The checkpoint's intervals were withheld (too few held-out episodes); False for older results."""
    return bool((c.get("intervals") or {}).get("too_small"))


def render_markdown(res: dict) -> str:
    L = ["# Offline evaluation (held-out episodes)", ""]
    d = res["dataset"]
    L += [
        f"Dataset `{d['repo_id']}` ({d['total_episodes']} episodes, {d['total_frames']} frames) at `{d['root']}`; "
        f"seed {res['seed']}, {res['n_bootstrap']} episode-bootstrap resamples for the 95% intervals (held-out "
        f"episodes resampled within their task; no interval below {MIN_UNITS} resampled episodes: \"{TOO_SMALL}\"), "
        f"batch size {res['batch_size']}, device {res['device']}. One checkpoint is one training seed: its "
        "intervals describe the checkpoint, not the method.",
        "",
        f"Command: `{res['command']}`",
        "",
    ]
    for n in res["notes"]:
        L.append(f"> **Note:** {n}")
    if res["notes"]:
        L.append("")
    L += [
        "## Comparison",
        "",
        "Action MSE/L1 over the full predicted chunk (non-padded steps), normalized units, with 95% intervals over "
        'episodes. World top-1 is the mean over horizons k = 1..K, beside the copy baseline ("the world does not '
        'change") and the bigram baseline on the same held-out episodes; "changed" = only the pairs where '
        "w_{t+k} != w_t, where the copy baseline is 0 by definition (a variant that sees w_t can copy it for "
        "free on the other pairs). Corruption columns are corrupted/clean action MSE, measured for every variant.",
        "",
        "| checkpoint | world input | held-out ep / frames | MSE (norm) | L1 (norm) | MSE (raw) | first-step MSE (norm) "
        "| world top-1 avg | top-5 avg | copy top-1 | bigram top-1 | top-1 changed | random | shuffle | mask |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in res["checkpoints"]:
        a, w, cor = c["action"], c["world"], c["corruption"]["modes"]
        small = _small(c)
        wcols = (
            [
                _f(w["avg"]["top1"], 3),
                _f(w["avg"]["top5"], 3),
                _f(w["avg"]["copy"], 3),
                _f(w["avg"]["bigram_top1"], 3),
                _f(w["avg"].get("top1_changed"), 3),
            ]
            if w
            else [MISSING] * 5
        )
        L.append(
            "| "
            + " | ".join(
                [
                    f"{c['name']}",
                    "yes" if c["uses_world_input"] else "no",
                    f"{a['n_episodes']} / {a['n_frames']}",
                    _ci(a["normalized"]["mse"], small=small),
                    _ci(a["normalized"]["l1"], small=small),
                    _f(a["raw"]["mse"]["value"]),
                    _f(a["normalized"]["first_step_mse"]["value"]),
                    *wcols,
                    *[_f(cor[m]["ratio"], 4) for m in CORRUPTIONS],
                ]
            )
            + " |"
        )
    L.append("")

    for c in res["checkpoints"]:
        a, w, cor = c["action"], c["world"], c["corruption"]
        t = c["timing"]
        small = _small(c)
        iv = c.get("intervals") or {}
        L += [
            f"## {c['name']}",
            "",
            f"- checkpoint: `{c['path']}` (variant `{c['variant']}`, chunk {c['chunk_size']}, trained "
            f"{c['training']['steps']} steps, seed {c['training']['seed']})",
            f"- held-out episodes (training run's eval_split={c['split']['eval_split']}, "
            f"{c['split']['n_train_episodes']} training episodes): {c['split']['heldout_episodes']}",
            f"- scored: {a['n_frames']} frames, {a['n_chunk_steps']} non-padded chunk steps",
        ]
        if small:
            L.append(
                f"- intervals: {TOO_SMALL} ({iv.get('n_resampled_units')} resampled held-out episode(s) of "
                f"{iv.get('n_units')}, fewer than {iv.get('min_units', MIN_UNITS)}): point estimates only"
            )
        if c["world_tokens"]:
            L.append(f"- world-token table: `{c['world_tokens']}`")
        L += ["", "### Action error", "", "| | normalized | raw |", "|---|---|---|"]
        for key, label in (
            ("mse", "MSE (chunk)"),
            ("l1", "L1 (chunk)"),
            ("first_step_mse", "MSE (first step)"),
            ("first_step_l1", "L1 (first step)"),
        ):
            L.append(f"| {label} | {_ci(a['normalized'][key], small=small)} | {_ci(a['raw'][key], small=small)} |")
        names = a["normalized"]["per_dim"]["names"]
        L += [
            "",
            "Per action dimension (chunk):",
            "",
            "| | " + " | ".join(names) + " |",
            "|---" * (len(names) + 1) + "|",
        ]
        for unit in ("normalized", "raw"):
            for key in ("mse", "l1"):
                L.append(
                    f"| {key.upper()} ({unit}) | " + " | ".join(_f(v) for v in a[unit]["per_dim"][key]) + " |"
                )
        if w:
            L += [
                "",
                f"### World tokens (K={w['K']}, V={w['vocab_size']})",
                "",
                "| k | pairs | top-1 [95% CI] | top-5 | copy top-1 | bigram top-1 | bigram top-5 | top-1 − copy "
                "| changed pairs | top-1 changed [95% CI] | top-5 changed | copy changed |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|",
            ]

            def changed_cols(r):
                ci = {"value": r.get("top1_changed"), "ci95": r.get("top1_changed_ci95")}
                return (
                    f"{_ci(ci, 3, small)} | "
                    f"{_f(r.get('top5_changed'), 3)} | {_f(r.get('copy_changed'), 3)}"
                )

            for r in w["per_k"]:
                gap = None if r["top1"] is None or r["copy"] is None else r["top1"] - r["copy"]
                L.append(
                    f"| {r['k']} | {r['n']} | {_ci({'value': r['top1'], 'ci95': r['top1_ci95']}, 3, small)} | {_f(r['top5'], 3)} | "
                    f"{_f(r['copy'], 3)} | {_f(r['bigram_top1'], 3)} | {_f(r['bigram_top5'], 3)} | {_f(gap, 3)} | "
                    f"{r.get('n_changed', MISSING)} | {changed_cols(r)} |"
                )
            av = w["avg"]
            gap = None if av["top1"] is None or av["copy"] is None else av["top1"] - av["copy"]
            L.append(
                f"| avg | | {_ci({'value': av['top1'], 'ci95': av['top1_ci95']}, 3, small)} | {_f(av['top5'], 3)} | {_f(av['copy'], 3)} | "
                f"{_f(av['bigram_top1'], 3)} | {_f(av['bigram_top5'], 3)} | {_f(gap, 3)} | "
                f"{(w.get('pooled') or {}).get('n_changed', MISSING)} | {changed_cols(av)} |"
            )
        L += [
            "",
            "### World corruption",
            "",
            "Action MSE in normalized units; world top-1 pooled over all (frame, k) pairs. World input: "
            f"{'yes' if cor['uses_world_input'] else 'no (ratios still measured through the same code path)'}.",
            "",
            "| mode | corrupted MSE | corrupted/clean [95% CI] | max abs action change | world top-1 |",
            "|---|---|---|---|---|",
            f"| clean | {_f(cor['clean_mse'])} | 1 | 0 | {_f(cor.get('clean_world_top1'), 3)} |",
        ]
        for m in CORRUPTIONS:
            r = cor["modes"][m]
            L.append(
                f"| {m} | {_f(r['mse'])} | {_ci({'value': r['ratio'], 'ci95': r['ratio_ci95']}, small=small)} | "
                f"{_f(r['max_abs_action_change'])} | {_f(r.get('world_top1'), 3)} |"
            )
        L += [
            "",
            f"Timing ({t['device']}, {t['torch_threads']} threads, shared with {len(t['checkpoints']) - 1} other checkpoint(s)): "
            f"{t['frames']} frames x {t['passes_per_frame']} forwards in {t['wall_s']:.1f} s = {_f(t['frames_per_s'], 1)} frames/s; "
            f"model forward {100 * (t['forward_fraction'] or 0):.0f}% of the time, data loading {t['data_s']:.1f} s.",
            "",
        ]
    return "\n".join(L) + "\n"
