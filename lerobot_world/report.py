"""`lerobot-world report RUNS... --output=REPORT.md`: one markdown report with every table of the study.

RUNS are run directories as the matrix runner lays them out (``<run>/state.json``, ``<run>/train/``,
``<run>/eval_offline/results.json``, ``<run>/eval_sim/results.json`` and, for closed-loop corruption,
``<run>/eval_sim_<mode>/results.json``), or a matrix output directory (its ``runs/*`` are taken), or a
``results/`` tree holding only the small outputs (same layout, no checkpoints: the run's policy config
is then read from ``<run>/policy_config.json`` / ``<run>/train_config.json`` when present).

The interpretation is written by rules that only state what the intervals support: two arms differ
only where their 95% intervals do not overlap (Wilson intervals for success rates, bootstrap-over-
episodes intervals for offline MSE, corrupted/clean ratio intervals that exclude 1.0).
"""

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

VARIANT_ORDER = ("A", "B", "C", "C_no_world_input")
ARCH = {
    "A": ("no", "no", "— (plain action BC)"),
    "B": ("no", "yes", "aux MLP head on pooled encoder output"),
    "C": ("yes", "yes", "K world queries in the decoder"),
    "C_no_world_input": ("no", "yes", "K world queries in the decoder (C without world input)"),
}
CORRUPTIONS = ("random", "shuffle", "mask")


class ReportError(ValueError):
    """A bad report input; the message names the path and what was expected."""


@dataclass
class RunRecord:
    name: str
    path: Path
    variant: str
    seed: int | None
    sweep: dict | None
    policy: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    offline: dict | None = None  # this run's entry of eval_offline results.json["checkpoints"]
    offline_command: str | None = None
    sim: dict | None = None  # eval_sim results.json (clean)
    sim_corrupted: dict = field(default_factory=dict)  # mode -> eval_sim results.json

    @property
    def is_main(self) -> bool:
        return not self.sweep


def _load_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _first_existing(*paths: Path) -> Path | None:
    return next((p for p in paths if p.is_file()), None)


def load_run(path: Path) -> RunRecord:
    state = _load_json(path / "state.json") or {}
    ckpt = path / "train" / "checkpoints" / "last" / "pretrained_model"
    policy = _load_json(_first_existing(ckpt / "config.json", path / "policy_config.json") or Path("/nonexistent"))
    train = _load_json(_first_existing(ckpt / "train_config.json", path / "train_config.json") or Path("/nonexistent"))
    if policy is None and not state:
        raise ReportError(
            f"{path} is not a run directory: expected state.json, train/checkpoints/last/pretrained_model/ "
            "or policy_config.json inside it."
        )
    policy = policy or {}
    variant = state.get("variant") or policy.get("variant") or ("A" if policy.get("type") == "act" else "?")
    record = RunRecord(
        name=state.get("name", path.name),
        path=path,
        variant=variant,
        seed=state.get("seed", (train or {}).get("seed")),
        sweep=state.get("sweep"),
        policy=policy,
        train=train or {},
    )
    offline = _load_json(path / "eval_offline" / "results.json")
    if offline:
        record.offline = offline["checkpoints"][0]
        record.offline_command = offline.get("command")
    record.sim = _load_json(path / "eval_sim" / "results.json")
    for mode in CORRUPTIONS:
        result = _load_json(path / f"eval_sim_{mode}" / "results.json")
        if result:
            record.sim_corrupted[mode] = result
    return record


def collect_runs(paths: list[Path]) -> list[RunRecord]:
    run_dirs: list[Path] = []
    for path in paths:
        if not path.is_dir():
            raise ReportError(f"{path} does not exist or is not a directory; expected a run or matrix directory.")
        if (path / "runs").is_dir():
            run_dirs += sorted(p for p in (path / "runs").iterdir() if p.is_dir())
        else:
            run_dirs.append(path)
    if not run_dirs:
        raise ReportError(f"no run directories found under {', '.join(map(str, paths))}.")
    runs = [load_run(p) for p in run_dirs]
    order = {v: i for i, v in enumerate(VARIANT_ORDER)}
    return sorted(runs, key=lambda r: (not r.is_main, order.get(r.variant, 9), r.seed or 0, r.name))


# --- formatting -------------------------------------------------------------------------------------------
def fmt(x, digits=3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if isinstance(x, float):
        return f"{x:.{digits}f}" if abs(x) >= 10 ** -digits or x == 0 else f"{x:.1e}"
    return str(x)


def fmt_ci(value, ci, digits=3, pct=False) -> str:
    if value is None:
        return "—"
    scale = 100 if pct else 1
    unit = "%" if pct else ""
    d = 0 if pct else digits
    text = f"{value * scale:.{d}f}{unit}"
    if ci:
        text += f" [{ci[0] * scale:.{d}f}, {ci[1] * scale:.{d}f}]"
    return text


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def wilson(k: int, n: int) -> tuple[float, float] | None:
    """95% Wilson interval (pooled closed-loop successes across seeds), the same one eval-sim reports."""
    from eval_sim.metrics import wilson_interval

    return wilson_interval(k, n)


def overlap(a, b) -> bool:
    return a is None or b is None or not (a[1] < b[0] or b[1] < a[0])


def closed_loop_world(overall: dict) -> tuple[dict, dict | None, float | None, float | None, list[str]]:
    """Closed-loop world accuracy per k, copy baseline per k (None in results written before it existed),
    and both means over the horizons where both are defined (as offline's "avg"), with those horizons:
    the two averages always cover the same k."""
    acc = overall["world_accuracy"]
    copy = overall.get("world_copy_baseline")
    ks = [k for k, v in acc.items() if v is not None and (copy is None or copy.get(k) is not None)]
    acc_avg = sum(acc[k] for k in ks) / len(ks) if ks else None
    copy_avg = sum(copy[k] for k in ks) / len(ks) if ks and copy else None
    return acc, copy, acc_avg, copy_avg, ks


def pairs_text(per_k: dict | None) -> str:
    """Pairs scored per k: one number when every horizon has the same count, else the range."""
    counts = list((per_k or {}).values())
    if not counts:
        return "—"
    return str(counts[0]) if min(counts) == max(counts) else f"{min(counts)}–{max(counts)}"


# --- sections -----------------------------------------------------------------------------------------------
def config_section(runs: list[RunRecord]) -> list[str]:
    rows = []
    for r in runs:
        p, t = r.policy, r.train
        world_in, world_loss, where = ARCH.get(r.variant, ("?", "?", "?"))
        uses_world = r.variant in ("B", "C", "C_no_world_input")
        rows.append([
            r.name, r.variant, world_in, world_loss, where, fmt(r.seed),
            fmt(p.get("future_offset")) if uses_world else "—",
            fmt(p.get("world_vocab_size")) if uses_world else "—",
            fmt(p.get("world_context")) if r.variant == "C" else "—",
            fmt(p.get("lambda_world")) if uses_world else "—",
            f"{p.get('dim_model', '?')}/{p.get('n_encoder_layers', '?')}/{p.get('n_decoder_layers', '?')}",
            f"{p.get('chunk_size', '?')}/{p.get('n_action_steps', '?')}",
            fmt(t.get("steps")), fmt(t.get("batch_size")),
        ])
    header = ["run", "variant", "world input", "world loss", "prediction", "seed", "K", "V", "ctx", "λ_world",
              "dim/enc/dec", "chunk/exec", "steps", "batch"]
    return ["## 1. Configurations", "", *table(header, rows), ""]


def offline_section(runs: list[RunRecord]) -> list[str]:
    rows, world_rows, corr_rows = [], [], []
    for r in runs:
        o = r.offline
        if not o:
            continue
        a = o["action"]
        n, raw = a["normalized"], a["raw"]
        rows.append([
            r.name, str(a["n_episodes"]), str(a["n_frames"]),
            fmt_ci(n["mse"]["value"], n["mse"]["ci95"]), fmt_ci(n["l1"]["value"], n["l1"]["ci95"]),
            fmt_ci(n["first_step_mse"]["value"], n["first_step_mse"]["ci95"]),
            fmt_ci(raw["mse"]["value"], raw["mse"]["ci95"], digits=4),
        ])
        w = o.get("world")
        if w:
            avg = w["avg"]
            world_rows.append([
                r.name, str(w["K"]), str(w["vocab_size"]),
                fmt_ci(avg["top1"], avg.get("top1_ci95")), fmt(avg["top5"]), fmt(avg["copy"]),
                fmt(avg.get("bigram_top1")), fmt(avg.get("bigram_top5")),
                " ".join(fmt(k["top1"], 2) for k in w["per_k"]),
                " ".join(fmt(k["copy"], 2) for k in w["per_k"]),
            ])
        c = o.get("corruption")
        if c:
            modes = c["modes"]
            corr_rows.append([
                r.name, "yes" if c["uses_world_input"] else "no", fmt(c["clean_mse"]),
                *[f"{fmt(modes[m]['mse'])} (×{fmt_ci(modes[m]['ratio'], modes[m].get('ratio_ci95'))})" for m in CORRUPTIONS],
            ])
    if not rows:
        return ["## 2. Offline evaluation", "", "No offline results found (`<run>/eval_offline/results.json`).", ""]
    out = ["## 2. Offline evaluation (held-out episodes)", "",
           "Action error over the full predicted chunk (non-padded steps); 95% bootstrap intervals over episodes.", ""]
    out += table(["run", "episodes", "frames", "MSE (norm.)", "L1 (norm.)", "first-step MSE (norm.)", "MSE (raw)"], rows)
    if world_rows:
        out += ["", "### World-token prediction", "",
                "Top-1/top-5 averaged over horizons k = 1..K, beside the copy baseline P(w_t = w_{t+k}) and the "
                "majority/bigram baseline on the same held-out pairs; per-k columns list k = 1..K.", ""]
        out += table(["run", "K", "V", "top-1 [95% CI]", "top-5", "copy", "bigram top-1", "bigram top-5",
                      "top-1 per k", "copy per k"], world_rows)
    if corr_rows:
        out += ["", "## 3. World corruption (offline)", "",
                "Normalized action MSE with the world input replaced (random ids / batch shuffle / mask id); "
                "(×ratio [95% CI]) = corrupted / clean. Variants without world input go through the same "
                "code path: their ratio is measured, not written in.", ""]
        out += table(["run", "world input", "clean MSE", "random", "shuffle", "mask"], corr_rows)
    return out + [""]


def sim_section(runs: list[RunRecord]) -> list[str]:
    sims = [r for r in runs if r.sim]
    if not sims:
        return ["## 4. Closed-loop LIBERO evaluation", "", "No closed-loop results found (`<run>/eval_sim/results.json`).", ""]
    rows, task_rows, world_rows, corr_rows = [], [], [], []
    for r in sims:
        o = r.sim["overall"]
        within = o.get("success_within", {})
        rows.append([
            r.name, str(o["n_episodes"]), fmt_ci(o["success_rate"], o["ci95"], pct=True),
            fmt(o.get("mean_length"), 1), fmt(o.get("goal_fraction"), 2), fmt(o.get("jerk"), 4),
            fmt(o.get("chunk_jump_boundary"), 4), fmt(o.get("chunk_jump_within"), 4),
            " ".join(f"{t}:{fmt(v, 2)}" for t, v in within.items()),
        ])
        for t in r.sim["per_task"]:
            task_rows.append([r.name, f"{t['suite']} #{t['task_id']}", t["task"], str(t["n_episodes"]),
                              fmt_ci(t["success_rate"], t["ci95"], pct=True)])
        if o.get("world_accuracy"):
            acc, copy, acc_avg, copy_avg, _ = closed_loop_world(o)
            world_rows.append([
                r.name, fmt(acc_avg), fmt(copy_avg),
                " ".join(f"k{k}:{fmt(v, 2)}" for k, v in acc.items()),
                " ".join(f"k{k}:{fmt(copy.get(k), 2)}" for k in acc) if copy else "—",
                pairs_text(o.get("world_pairs")),
            ])
        for mode, res in r.sim_corrupted.items():
            co = res["overall"]
            corr_rows.append([r.name, mode, str(co["n_episodes"]), fmt_ci(o["success_rate"], o["ci95"], pct=True),
                              fmt_ci(co["success_rate"], co["ci95"], pct=True), fmt(co.get("goal_fraction"), 2)])
    first = sims[0].sim
    out = ["## 4. Closed-loop LIBERO evaluation", "",
           f"LeRobot's LIBERO env and processors, LIBERO's fixed init states; max {first['env'].get('max_steps')} "
           f"steps; seed {first.get('seed')} ({first.get('episode_seeds')}). Success rate with 95% Wilson interval; "
           "goal = share of the task's BDDL goal predicates true at the end; jerk = mean |a[t+1]-2a[t]+a[t-1]|; "
           "chunk jump = mean |a[t]-a[t-1]| at chunk-start steps vs within chunks; success within T steps.", ""]
    out += table(["run", "episodes", "success [95% CI]", "length", "goal", "jerk", "jump@chunk", "jump within",
                  "success within T"], rows)
    out += ["", "### Per task", ""] + table(["run", "task", "instruction", "episodes", "success [95% CI]"], task_rows)
    if world_rows:
        out += ["", "### Closed-loop world accuracy", "",
                "Token predicted at step t for t+k vs the token observed at t+k, beside the copy baseline "
                "(token observed at t = token observed at t+k) on the same pairs; averages are means over "
                "k = 1..K.", ""]
        out += table(["run", "accuracy", "copy", "accuracy per k", "copy per k", "pairs per k"], world_rows)
    if corr_rows:
        out += ["", "### Closed-loop world corruption", ""]
        out += table(["run", "mode", "episodes", "clean success", "corrupted success", "corrupted goal"], corr_rows)
    return out + [""]


def pooled_success(runs: list[RunRecord], variant: str) -> tuple[int, int, tuple | None]:
    k = n = 0
    for r in runs:
        if r.variant == variant and r.is_main and r.sim:
            k += r.sim["overall"]["n_success"]
            n += r.sim["overall"]["n_episodes"]
    return k, n, wilson(k, n)


def interpretation(runs: list[RunRecord]) -> list[str]:
    """Statements the intervals support, and nothing more."""
    lines = ["## 5. What the numbers support", ""]
    main = [r for r in runs if r.is_main]
    pairs = [("C", "C_no_world_input", "the world input (C vs C_no_world_input)"),
             ("C", "A", "the world-token design over plain BC (C vs A)"),
             ("B", "A", "the auxiliary future loss over plain BC (B vs A)"),
             ("C_no_world_input", "B", "in-sequence world queries over the auxiliary head (C_no_world_input vs B)")]
    # Closed loop: pooled over seeds.
    for a, b, what in pairs:
        ka, na, ca = pooled_success(main, a)
        kb, nb, cb = pooled_success(main, b)
        if not na or not nb:
            continue
        if overlap(ca, cb):
            verdict = "the 95% intervals overlap, so this sample does not separate them"
        else:
            verdict = f"the intervals separate: {a} is {'higher' if ka / na > kb / nb else 'lower'}"
        lines.append(f"- Closed loop, {what}: {a} {ka}/{na} = {fmt_ci(ka / na, ca, pct=True)} vs "
                     f"{b} {kb}/{nb} = {fmt_ci(kb / nb, cb, pct=True)}; {verdict}.")
    # Offline: seed-matched pairs.
    by_key = {(r.variant, r.seed): r for r in main if r.offline}
    for a, b, what in pairs:
        seeds = sorted({s for (v, s) in by_key if v == a} & {s for (v, s) in by_key if v == b}, key=lambda s: s or 0)
        if not seeds:
            continue
        lower = separate = 0
        for s in seeds:
            ma = by_key[(a, s)].offline["action"]["normalized"]["mse"]
            mb = by_key[(b, s)].offline["action"]["normalized"]["mse"]
            lower += ma["value"] < mb["value"]
            separate += not overlap(ma["ci95"], mb["ci95"])
        lines.append(f"- Offline action MSE, {what}: {a} is lower in {lower} of {len(seeds)} seed(s); the bootstrap "
                     f"intervals separate in {separate} of {len(seeds)}.")
    # Corruption.
    for r in main:
        c = (r.offline or {}).get("corruption")
        if not c:
            continue
        if c["uses_world_input"]:
            moved = [m for m in CORRUPTIONS if c["modes"][m].get("ratio_ci95") and not overlap(c["modes"][m]["ratio_ci95"], (1.0, 1.0))]
            if moved:
                lines.append(f"- Corruption, {r.name}: corrupting the world input changes its action error "
                             f"({', '.join(f'{m} ×{fmt(c['modes'][m]['ratio'])}' for m in moved)}; intervals exclude 1.0): "
                             "the policy uses the world tokens.")
            else:
                lines.append(f"- Corruption, {r.name}: no mode moves the action error beyond its interval: "
                             "no evidence that the policy relies on its world input.")
        else:
            ratios = {m: c["modes"][m]["ratio"] for m in CORRUPTIONS}
            lines.append(f"- Corruption, {r.name} (no world input): measured ratios "
                         f"{', '.join(f'{m} {fmt(v, 3)}' for m, v in ratios.items())} (the control; must be 1.0).")
    # World prediction against the copy baseline.
    for r in main:
        w = (r.offline or {}).get("world")
        if not w:
            continue
        ci = w["avg"].get("top1_ci95")
        copy = w["avg"]["copy"]
        if ci and ci[0] > copy:
            verdict = "beats"
        elif ci and ci[1] < copy:
            verdict = "is below"
        else:
            verdict = "is not distinguishable from"
        lines.append(f"- World prediction, {r.name}: top-1 {fmt_ci(w['avg']['top1'], ci)} {verdict} the copy "
                     f"baseline {fmt(copy)} (\"the world does not change\").")
    # Closed-loop world prediction against the closed-loop copy baseline (point estimates: the pairs
    # overlap in time within an episode, so no binomial interval is claimed).
    for r in main:
        o = (r.sim or {}).get("overall", {})
        if not o.get("world_accuracy"):
            continue
        acc, copy, acc_avg, copy_avg, ks = closed_loop_world(o)
        if acc_avg is None or copy_avg is None:
            continue
        above = sum(acc[k] > copy[k] for k in ks)
        below = sum(acc[k] < copy[k] for k in ks)
        if acc_avg > copy_avg:
            verdict = "is above"
        elif acc_avg < copy_avg:
            verdict = "is below"
        else:
            verdict = "equals"
        lines.append(f"- Closed-loop world prediction, {r.name}: accuracy {fmt(acc_avg)} (mean over k) {verdict} the "
                     f"closed-loop copy baseline {fmt(copy_avg)} on the same pairs; above it at {above} and below at "
                     f"{below} of {len(ks)} horizon(s) (point estimates, no interval).")
    if len(lines) == 2:
        lines.append("- Not enough results to compare arms.")
    return lines + [""]


def plots(runs: list[RunRecord], out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    world = [r for r in runs if r.is_main and r.offline and r.offline.get("world")]
    if world:
        fig, ax = plt.subplots(figsize=(6, 4))
        for r in world:
            per_k = r.offline["world"]["per_k"]
            ks = [p["k"] for p in per_k]
            ax.plot(ks, [p["top1"] for p in per_k], marker="o", label=f"{r.name} (offline)")
            if r.sim and r.sim["overall"].get("world_accuracy"):
                wa = r.sim["overall"]["world_accuracy"]
                ax.plot([int(k) for k in wa], [v if v is not None else float("nan") for v in wa.values()],
                        linestyle="--", marker="x", label=f"{r.name} (closed loop)")
        per_k = world[0].offline["world"]["per_k"]
        ax.plot([p["k"] for p in per_k], [p["copy"] for p in per_k], color="black", linestyle=":", label="copy baseline")
        if per_k[0].get("bigram_top1") is not None:
            ax.plot([p["k"] for p in per_k], [p["bigram_top1"] for p in per_k], color="gray", linestyle="-.",
                    label="bigram baseline")
        ax.set_xlabel("horizon k"), ax.set_ylabel("top-1 accuracy"), ax.set_ylim(0, 1)
        ax.set_title("World-token prediction vs horizon")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / "world_accuracy.png", dpi=120)
        plt.close(fig)
        made.append("world_accuracy.png")
    sims = [r for r in runs if r.is_main and r.sim and r.sim["overall"].get("success_within")]
    if sims:
        fig, ax = plt.subplots(figsize=(6, 4))
        for r in sims:
            within = r.sim["overall"]["success_within"]
            ax.plot([int(t) for t in within], list(within.values()), marker="o", label=r.name)
        ax.set_xlabel("T (env steps)"), ax.set_ylabel("success within T"), ax.set_ylim(-0.02, 1.02)
        ax.set_title("Closed-loop success within T steps")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / "success_within_T.png", dpi=120)
        plt.close(fig)
        made.append("success_within_T.png")
    return made


def provenance(runs: list[RunRecord]) -> list[str]:
    lines = ["## 6. Provenance", "", "Every number above comes from these runs and commands.", ""]
    for r in runs:
        lines.append(f"- **{r.name}** (`{r.path}`)")
        cmd = None
        state = _load_json(r.path / "state.json") or {}
        cmd = state.get("stages", {}).get("train", {}).get("command")
        if cmd:
            lines.append(f"  - train: `{cmd}`")
        if r.offline_command:
            lines.append(f"  - eval-offline: `{r.offline_command}`")
        if r.sim:
            lines.append(f"  - eval-sim: `{r.sim.get('command')}`")
        for mode, res in r.sim_corrupted.items():
            lines.append(f"  - eval-sim ({mode}): `{res.get('command')}`")
    return lines + [""]


def build_report(paths: list[Path], output: Path, title: str = "lerobot-world report", preamble: str = "") -> Path:
    runs = collect_runs(paths)
    output.parent.mkdir(parents=True, exist_ok=True)
    images = plots(runs, output.parent)
    lines = [f"# {title}", ""]
    if preamble:
        lines += [preamble, ""]
    lines += config_section(runs) + offline_section(runs) + sim_section(runs) + interpretation(runs)
    if images:
        lines += ["## Plots", ""] + [f"![{name}]({name})" for name in images] + [""]
    lines += provenance(runs)
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(output)
    json_path = output.with_suffix(".json")
    json_path.write_text(json.dumps({
        "runs": [{"name": r.name, "path": str(r.path), "variant": r.variant, "seed": r.seed, "sweep": r.sweep,
                  "offline": r.offline, "sim": r.sim and r.sim["overall"],
                  "sim_corrupted": {m: v["overall"] for m, v in r.sim_corrupted.items()}} for r in runs],
        "plots": images,
    }, indent=2, default=str))
    return output


@dataclass
class ReportConfig:
    # Run or matrix directories (also accepted as positional arguments).
    runs: list[str] = field(default_factory=list)
    output: str = "REPORT.md"
    title: str = "lerobot-world report"
    # Free text placed under the title (e.g. the scale of the runs), or a file holding it (draccus
    # reads flag values as YAML, so text with ": " in it is easier to pass as a file).
    preamble: str = ""
    preamble_file: str | None = None


def main(argv: list[str] | None = None) -> None:
    import draccus

    argv = list(sys.argv[1:] if argv is None else argv)
    positional = [a for a in argv if not a.startswith("--")]
    flags = [a for a in argv if a.startswith("--")]
    cfg = draccus.parse(ReportConfig, args=flags)
    paths = [Path(p) for p in cfg.runs + positional]
    if not paths:
        sys.exit("error: give at least one run or matrix directory: lerobot-world report RUN... --output=REPORT.md")
    preamble = cfg.preamble
    if cfg.preamble_file:
        if not Path(cfg.preamble_file).is_file():
            print(f"error: --preamble_file={cfg.preamble_file} does not exist.", file=sys.stderr)
            sys.exit(2)
        preamble = Path(cfg.preamble_file).read_text().strip()
    try:
        out = build_report(paths, Path(cfg.output), cfg.title, preamble)
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"report written to {out} (+ {out.with_suffix('.json').name} and plots beside it)")


if __name__ == "__main__":
    main()
