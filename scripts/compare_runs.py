"""Paired comparison of two exported runs scored on the same episodes (e.g. the bf16 quality check:
results/bf16_check/{fp32,bf16}/runs/A_s0), written as markdown from their results files alone.

Closed loop pairs episodes by (task, init state); offline pairs held-out episodes. Intervals and tests are
lerobot_world.stats' (the report's): Wilson per run, a paired bootstrap difference over episodes, McNemar's
exact test for success. One training seed per run: the intervals describe these two checkpoints.

    .venv/bin/python scripts/compare_runs.py results/bf16_check/fp32/runs/A_s0 results/bf16_check/bf16/runs/A_s0 \\
        --labels fp32 bf16 --output results/bf16_check/COMPARISON.md
"""

import argparse
import json
import sys
from pathlib import Path

from lerobot_world import stats
from lerobot_world.study.report import offline_units, sim_units


def _load(run: Path, stage: str) -> dict:
    path = run / stage / "results.json"
    if not path.is_file():
        sys.exit(f"error: {path} does not exist; expected an exported run directory with {stage}/results.json.")
    return json.loads(path.read_text())


def _fmt_ci(ci) -> str:
    return "n too small" if ci is None else f"[{ci[0]:+.4f}, {ci[1]:+.4f}]"


def compare(run_a: Path, run_b: Path, label_a: str, label_b: str) -> str:
    sim_a, sim_b = _load(run_a, "eval_sim"), _load(run_b, "eval_sim")
    # The report's own pairing keys: (suite, task, init state, env seed) and the held-out episode index.
    by_a = {k: e["success"] for k, e in sim_units(sim_a, str(run_a)).items()}
    by_b = {k: e["success"] for k, e in sim_units(sim_b, str(run_b)).items()}
    common, only_a, only_b = stats.match_units(by_a, by_b)
    if only_a or only_b or not common:
        sys.exit(f"error: the runs' closed-loop episodes differ (only in {label_a}: {only_a}, only in {label_b}: {only_b}).")
    sa = [by_a[k] for k in common]
    sb = [by_b[k] for k in common]
    strata = [k[:2] for k in common]
    one_seed = [0] * len(common)
    diff = stats.paired_difference(sb, [1] * len(sb), sa, [1] * len(sa), one_seed, strata)
    test = stats.mcnemar_exact(sb, sa)

    off_a = offline_units(_load(run_a, "eval_offline")["checkpoints"][0])
    off_b = offline_units(_load(run_b, "eval_offline")["checkpoints"][0])
    eps, only_a, only_b = stats.match_units(off_a, off_b)
    if only_a or only_b or not eps:
        sys.exit(f"error: the runs' held-out episodes differ (only in {label_a}: {only_a}, only in {label_b}: {only_b}).")
    num = lambda off: [off[e]["se_sum"] for e in eps]  # noqa: E731
    den = lambda off: [off[e]["n_values"] for e in eps]  # noqa: E731
    ep_strata = [off_a[e]["task_index"] for e in eps]
    mse = {lab: stats.hierarchical_bootstrap(num(off), den(off), [0] * len(eps), ep_strata)
           for lab, off in ((label_a, off_a), (label_b, off_b))}
    mse_diff = stats.paired_difference(num(off_b), den(off_b), num(off_a), den(off_a), [0] * len(eps), ep_strata)

    lines = [f"# {label_b} vs {label_a}: paired comparison", "",
             f"- {label_a}: `{run_a}`", f"- {label_b}: `{run_b}`",
             "- made by `scripts/compare_runs.py` from the runs' results files; one training seed per run, so the "
             "intervals describe these two checkpoints, not the precisions in general.", "",
             "## Closed loop (same episodes: task, init state, env seed)", "",
             "| run | success | rate | 95% CI (Wilson) |", "|---|---|---|---|"]
    for lab, s in ((label_a, sa), (label_b, sb)):
        lo, hi = stats.wilson_interval(sum(s), len(s))
        lines.append(f"| {lab} | {sum(s)}/{len(s)} | {sum(s) / len(s):.1%} | {lo:.1%}–{hi:.1%} |")
    lines += ["", f"Paired difference {label_b} − {label_a}: {diff['value']:+.3f}, 95% bootstrap CI "
              f"{_fmt_ci(diff['ci95'])} over {len(common)} episodes; McNemar exact: {test['b']} episodes only "
              f"{label_b} solved, {test['c']} only {label_a} solved, p = {test['p_value']:.3f}.", "",
              "## Offline action MSE (normalized, full chunk; same held-out episodes)", "",
              "| run | MSE | 95% CI |", "|---|---|---|"]
    for lab in (label_a, label_b):
        ci = mse[lab]["ci95"]
        lines.append(f"| {lab} | {mse[lab]['value']:.4f} | {'n too small' if ci is None else f'[{ci[0]:.4f}, {ci[1]:.4f}]'} |")
    lines += ["", f"Paired difference {label_b} − {label_a}: {mse_diff['value']:+.4f}, 95% bootstrap CI "
              f"{_fmt_ci(mse_diff['ci95'])} over {len(eps)} held-out episodes.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    parser.add_argument("--labels", nargs=2, default=["a", "b"])
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    text = compare(args.run_a, args.run_b, *args.labels)
    if args.output:
        args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
