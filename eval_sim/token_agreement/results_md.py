"""results.md and the printed summary of token-agreement: pure formatting of the results dict.
"""



from eval_sim.token_agreement.config import POLICY_NOTE
from lerobot_world.vocabulary import MISSING


def fmt4(x, nd=4):
    return MISSING if x is None else f"{x:.{nd}f}"


def _policy_sentence(r: dict) -> str:
    pol, o = r.get("policy"), r["overall"].get("policy")
    if not pol or not o:
        return ""
    return (
        f" World prediction along the demonstrated states (policy {pol['variant']} at {pol['path']} observes every "
        f"replayed frame while the recorded actions are executed): accuracy {fmt4(o['mean'], 3)} averaged over "
        f"k=1..{pol['future_offset']} vs copy baseline {fmt4(o['copy_mean'], 3)} on the same {o['pairs']} (t, t+k) pairs "
        f"({o['n_predictions']} predictions); this separates the world model's accuracy from the policy's own "
        "trajectories in eval-sim."
    )


def summary_paragraph(r: dict) -> str:
    o = r["overall"]
    storage = "h264 video" if r["source"]["use_videos"] else "PNG (lossless)"
    eps = ", ".join(str(e["episode_index"]) for e in r["episodes"])
    pairs = ", ".join(f"{p['table']}->{p['live']} x{p['count']}" for p in o["top_pairs"][:3]) or "none"
    return (
        f"token-agreement: live tokens equal the table's for {o['agree']}/{o['frames']} frames "
        f"({100 * o['agreement']:.1f}%) over episodes [{eps}] of {r['dataset']['repo_id']} ({storage}, "
        f"{r['source']['image_size']} px, camera {r['image_key']}, {r['table']['encoder']} V={r['table']['vocab_size']}); "
        f"{o['mismatches']} mismatches ({o['mismatch_adjacent']} equal a neighbouring frame's table token; most common "
        f"table->live: {pairs}). The replay reproduces the recorded states to max |Δstate| = {o['state_max_abs_err']:.3g}; "
        f"live vs decoded {r['image_key']} pixels differ by {o['pixel_mean_abs_diff']:.3f}/255 on average "
        f"(max {o['pixel_max_abs_diff']:.0f}, {o['pixel_identical_frames']}/{o['frames']} frames identical); "
        f"decoded frames re-tokenized give the table's token for {100 * o['decoded_agreement']:.1f}% of frames."
        + _policy_sentence(r)
    )


def render_markdown(r: dict) -> str:
    o = r["overall"]
    lines = [
        f"# World-token agreement: live frames vs table ({r['dataset']['repo_id']})",
        "",
        f"`{r['command']}`",
        "",
        f"Dataset `{r['dataset']['root']}` ({'h264 video' if r['source']['use_videos'] else 'PNG'}, "
        f"{r['source']['suite']}, {r['source']['image_size']} px, init={r['source']['init']}); table `{r['table']['path']}` "
        f"({r['table']['encoder']}, V={r['table']['vocab_size']}, camera `{r['image_key']}`). Recorded actions replayed "
        "in LeRobot's LiberoEnv + env processors (what eval-sim hands a policy).",
        "",
        summary_paragraph(r),
        "",
        "| episode | task id | init | seed | frames | live = table | agreement | mismatches (adjacent) | first mismatch "
        "| decoded = table | max abs state err | mean abs pixel diff | max abs pixel diff |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in r["episodes"]:
        lines.append(
            f"| {e['episode_index']} | {e['task_id']} | {e['init_id']} | {e['seed']} | {e['frames']} | {e['agree']} | "
            f"{fmt4(e['agreement'])} | {len(e['mismatches'])} ({e['mismatch_adjacent']}) | "
            f"{'-' if e['first_mismatch'] is None else e['first_mismatch']} | {e['decoded_agree']} | "
            f"{e['state_max_abs_err']:.3g} | {e['pixel_mean_abs_diff']:.3f} | {e['pixel_max_abs_diff']:.0f} |"
        )
    lines.append(
        f"| all | | | | {o['frames']} | {o['agree']} | {fmt4(o['agreement'])} | {o['mismatches']} ({o['mismatch_adjacent']}) "
        f"| | {o['decoded_agree']} | {o['state_max_abs_err']:.3g} | {o['pixel_mean_abs_diff']:.3f} "
        f"| {o['pixel_max_abs_diff']:.0f} |"
    )
    lines += ["", "Most common mismatches (table token -> live token):", ""]
    if o["top_pairs"]:
        lines += ["| table | live | frames |", "|---|---|---|"]
        lines += [f"| {p['table']} | {p['live']} | {p['count']} |" for p in o["top_pairs"]]
    else:
        lines.append("none")
    lines += [
        "",
        "Pixel differences are in 0..255 units on the tokenized camera; state error is over the 8-dim "
        "`observation.state`. 'adjacent': the live token equals the table token of the previous or next frame.",
        "",
    ]
    if r.get("policy") and r["overall"].get("policy"):
        lines += policy_markdown(r)
    return "\n".join(lines)


def policy_markdown(r: dict) -> list[str]:
    pol, o = r["policy"], r["overall"]["policy"]
    ks = list(o["world_accuracy"])
    lines = [
        f"## World prediction along the demonstrated states: policy {pol['variant']}",
        "",
        f"`{pol['path']}` (K={pol['future_offset']}, n_action_steps={pol['n_action_steps']}, device {pol['device']}). "
        f"{POLICY_NOTE[0].upper() + POLICY_NOTE[1:]}. Model: the token the policy predicted at step t for t+k equals "
        "the token it observed at t+k (a new prediction per action chunk, as in eval-sim); copy: the token observed at t "
        "equals the one at t+k, on the same pairs. Split: the episode's role in the checkpoint's training run.",
        "",
        "| episode | split | predictor | " + " | ".join(f"k={k}" for k in ks) + " | mean |",
        "|---|---|---|" + "---|" * len(ks) + "---|",
    ]

    def rows(name, split, w):
        return [
            f"| {name} | {split} | model | " + " | ".join(fmt4(w["world_accuracy"][k], 3) for k in ks) + f" | {fmt4(w['mean'], 3)} |",
            f"| {name} | {split} | copy | " + " | ".join(fmt4(w["world_copy_baseline"][k], 3) for k in ks)
            + f" | {fmt4(w['copy_mean'], 3)} |",
        ]

    for e in r["episodes"]:
        lines += rows(e["episode_index"], e["policy"].get("split") or "-", e["policy"])
    lines += rows("all", "", o)
    lines.append("| pairs | | | " + " | ".join(str(c) for c in o["count"]) + f" | {o['pairs']} |")
    lines += [
        "",
        f"The policy's own observed token equals the live token (table tokenizer) on {o['observed_equals_live']}/"
        f"{o['frames']} frames.",
        "",
    ]
    return lines
