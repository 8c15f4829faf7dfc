"""results.md of eval-sim: the human-readable twin of results.json.

Pure formatting of the results dict (no simulator, no torch), so it can be re-rendered from a saved
results.json and tested on its own.
"""

from lerobot_world.vocabulary import MISSING


def fmt_value(x, pct=False, nd=3):
    if x is None:
        return MISSING
    if pct:
        return f"{100 * x:.1f}%"
    return f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def render_markdown(r: dict) -> str:
    """Human-readable twin of results.json."""
    L = [f"# eval_sim: {r['policy']['type']} on {', '.join(r['env']['suites'])}", ""]
    L += [f"- command: `{r['command']}`" if r["command"] else "- command: (Python API)"]
    L += [
        f"- policy: {r['policy'].get('path') or r['policy']['type']}"
        + (f" (variant {r['policy']['variant']})" if r["policy"].get("variant") else ""),
        f"- episodes: {r['n_episodes']} ({r['n_episodes_per_task']} per task), init states "
        f"{r['init_state_start']}..{r['init_state_start'] + r['n_episodes_per_task'] - 1}, seeds {r['seed']}+episode, "
        f"max_steps {r['env']['max_steps']}, images {r['env']['observation_size'][0]}x{r['env']['observation_size'][1]}, "
        f"corruption {r['corruption']}",
        f"- created {r['created']}, wall {r['wall_s']:.0f} s",
        "",
        "## Success",
        "",
        "| scope | task | success | rate | 95% CI (Wilson) | mean len | goal frac | jerk | jump@chunk | jump in chunk |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def row(scope, task, a):
        ci = a["ci95"]
        return (
            f"| {scope} | {task} | {a['n_success']}/{a['n_episodes']} | {fmt_value(a['success_rate'], True)} | "
            f"{MISSING if not ci else f'{100 * ci[0]:.1f}–{100 * ci[1]:.1f}%'} | {fmt_value(a['mean_length'], nd=1)} | "
            f"{fmt_value(a['goal_fraction'], True)} | {fmt_value(a['jerk'], nd=4)} | {fmt_value(a['chunk_jump_boundary'], nd=4)} | "
            f"{fmt_value(a['chunk_jump_within'], nd=4)} |"
        )

    for t in r["per_task"]:
        L.append(row(f"{t['suite']} #{t['task_id']}", t["task"], t))
    for s, a in r["per_suite"].items():
        L.append(row(f"**{s}**", f"{a['n_tasks']} tasks", a))
    grid = r["success_grid"]
    L += ["", "## Success within T steps", "", "| scope | " + " | ".join(f"T={t}" for t in grid) + " |"]
    L.append("|---|" + "---|" * len(grid))
    for t in r["per_task"]:
        L.append(f"| {t['suite']} #{t['task_id']} | " + " | ".join(fmt_value(t["success_within"].get(str(g)), True) for g in grid) + " |")
    for s, a in r["per_suite"].items():
        L.append(f"| **{s}** | " + " | ".join(fmt_value(a["success_within"].get(str(g)), True) for g in grid) + " |")
    wa = r["overall"].get("world_accuracy")
    if wa:
        ks = list(wa)
        L += ["", "## Closed-loop world accuracy (token predicted at t for t+k vs observed at t+k)", ""]
        L += [
            "Copy = the token observed at t equals the one observed at t+k, on the same pairs (\"no change\"). "
            "Changed = only the pairs where the token observed at t+k differs from the one at t: the copy baseline "
            "is 0 there by definition, so a hit is a predicted change. Top-5 = the observed token is among the "
            "policy's 5 most likely (— where the policy or an older results.json does not give them).",
            "",
        ]
        L += ["| scope | predictor | " + " | ".join(f"k={k}" for k in ks) + " |", "|---|---|" + "---|" * len(ks)]

        def world_rows(scope, a):
            def cells(key):
                return " | ".join(fmt_value((a.get(key) or {}).get(k), True) for k in ks)

            return [
                f"| {scope} | model | {cells('world_accuracy')} |",
                f"| {scope} | copy | {cells('world_copy_baseline')} |",
                f"| {scope} | model top-5 | {cells('world_top5_accuracy')} |",
                f"| {scope} | changed: model | {cells('world_changed_accuracy')} |",
                f"| {scope} | changed: model top-5 | {cells('world_changed_top5_accuracy')} |",
            ]

        for t in r["per_task"]:
            L += world_rows(f"{t['suite']} #{t['task_id']}", t)
        L += world_rows("**all**", r["overall"])
        changed = r["overall"].get("world_changed_pairs") or {}
        L.append("| pairs | | " + " | ".join(str(r["overall"]["world_pairs"][k]) for k in ks) + " |")
        L.append("| changed pairs | | " + " | ".join(fmt_value(changed.get(k)) for k in ks) + " |")
    th = r["throughput"]
    L += [
        "",
        "## Throughput",
        "",
        f"- env steps: {th['env_steps']}; with policy {fmt_value(th['env_steps_per_s'], nd=2)} steps/s, "
        f"without policy {fmt_value(th['env_steps_per_s_without_policy'], nd=2)} steps/s, "
        f"env alone {fmt_value(th['env_only_steps_per_s'], nd=2)} steps/s",
        f"- time: env {th['env_s']:.1f} s, policy {th['policy_s']:.1f} s, harness {th['harness_s']:.1f} s "
        f"(harness/env {fmt_value(th['harness_overhead_vs_env'], True)}), resets {th['reset_s']:.1f} s",
        "",
        "## Episodes",
        "",
        "| task | ep | init | seed | success | length | goal predicates | video |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in r["episodes"]:
        preds = ", ".join(("✓ " if p["satisfied"] else "✗ ") + p["predicate"] for p in e["goal_predicates"])
        vid = f"[mp4]({e['video']})" if e["video"] else ""
        L.append(
            f"| {e['suite']} #{e['task_id']} | {e['episode_index']} | {e['init_state_id']} | {e['seed']} | "
            f"{'yes' if e['success'] else 'no'} | {e['length']} | {preds} | {vid} |"
        )
    from eval_sim.metrics import WORLD_DEFINITIONS

    defs = dict(r["metric_definitions"])
    if wa:
        defs.update({k: v for k, v in WORLD_DEFINITIONS.items() if k not in defs})
    L += ["", "## Definitions", ""] + [f"- {k}: {v}" for k, v in defs.items()]
    return "\n".join(L) + "\n"
