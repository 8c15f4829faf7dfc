"""`lerobot-world report RUNS... --output=REPORT.md`: one markdown report with every table of the study.

RUNS are run directories as the matrix runner lays them out (``<run>/state.json``, ``<run>/train/``,
``<run>/eval_offline/results.json``, ``<run>/eval_sim/results.json`` and, for closed-loop corruption,
``<run>/eval_sim_<mode>/results.json``), or a matrix output directory (its ``runs/*`` are taken), or a
``results/`` tree holding only the small outputs (same layout, no checkpoints: the run's policy config
is then read from ``<run>/policy_config.json`` / ``<run>/train_config.json`` when present). Runs found
under a ``runs/`` folder are named ``runs/<name>`` (not by the folder's absolute path), and a run's
``commands.sh`` (written by the matrix, the cache as ``$OUTPUT_DIR``) gives its provenance, so a report of a
results tree is the same byte for byte from any copy of it.

Calibration: ``<run>/eval_sim_step<N>/`` and ``<run>/eval_offline_step<N>/`` (a matrix stage's
``checkpoints``) hold the evaluation of training step N's checkpoint; with the final checkpoint they give
success (and offline MSE) against the training budget, per arm with the same hierarchical intervals.

Statistics (DESIGN §5; the code is ``lerobot_world.stats``). The training seed is the unit:

* **Same seeds for every arm.** For closed loop and for offline separately, the study seeds are the
  seeds every arm with such results has (main runs, not sweeps). Per-arm numbers and all comparisons use
  exactly those seeds; a run with any other seed is listed under "extra seeds, not in comparisons" and
  never pooled into an arm or a comparison. Two main runs of one arm with the same seed are an error.
* **Per arm**: closed-loop success (overall and per task) and offline normalized action MSE, pooled
  over the study seeds, with a 95% hierarchical-bootstrap interval (seeds resampled, then episodes
  within seed and task: closed-loop episodes, or held-out episodes offline). Below ``stats.MIN_UNITS``
  resampled units no interval is printed: "n too small".
* **Between arms**: three named comparisons, B vs A ("aux loss"), C_no_world_input vs B ("actions
  reading the forecast"), C vs C_no_world_input ("world input"). Each is a paired difference with its
  95% bootstrap interval, the same resample applied to both arms' matched units: closed-loop success
  paired by (seed, suite, task, init state, env seed); offline MSE paired by (seed, held-out episode).
  Closed-loop success also gets McNemar's exact test on the discordant pairs pooled over seeds.
  Episodes that do not match are excluded and counted in a note.
* **Corruption**: closed loop, ``eval_sim_<mode>`` is paired with the clean run episode by episode
  (same keys); offline, each held-out episode's corrupted squared error is paired with its clean one.
* **World accuracy** beside the copy baseline on all pairs, and on the pairs where w_{t+k} != w_t, where
  the copy baseline is 0 by definition (a variant that sees w_t copies it for free on the others).
* **Claims**: the interpretation states an effect only where the interval of a paired difference excludes
  0, names the comparison, and says when there is one seed (then the numbers describe checkpoints, not
  methods). Per-run tables keep each result file's own intervals (Wilson for one checkpoint's success,
  the episode bootstrap offline), labelled as such; no conclusion is drawn from their overlap.

The report is deterministic: every bootstrap is seeded (``--bootstrap_seed``) and every unit list
sorted, so building it twice from the same results gives byte-identical REPORT.md and REPORT.json.
"""

import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from lerobot_world import stats
from lerobot_world.errors import UserError, parse_config, run_command
from lerobot_world.study.results import COMMANDS_FILE, log_tail, read_commands
from lerobot_world.vocabulary import CORRUPTIONS, MISSING, VARIANTS

ARCH = {
    "A": ("no", "no", MISSING),
    "B": ("no", "yes", "aux MLP head on pooled encoder output; a loss only, never reaches the actions"),
    "C": (
        "yes",
        "yes",
        "K world queries in the decoder; the action queries read them (block mask); world input = current + "
        "past tokens (stride s)",
    ),
    "C_no_world_input": ("no", "yes", "C's queries and mask, no world input"),
}
# (arm, reference arm, what the difference isolates): DESIGN §1's three contrasts.
COMPARISONS = (
    ("B", "A", "aux loss"),
    ("C_no_world_input", "B", "actions reading the forecast"),
    ("C", "C_no_world_input", "world input"),
)
EXTRA = "extra seeds, not in comparisons"


class ReportError(UserError):
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
    # How the run is named in the report: runs/<name> under a matrix/results folder, else the path given.
    label: str = ""
    sim_steps: dict = field(default_factory=dict)  # training step -> eval_sim results.json of that checkpoint
    offline_steps: dict = field(default_factory=dict)  # training step -> eval_offline checkpoint entry
    commands: list | None = None  # (stage, command) from the run's commands.sh, in execution order
    train_fit: dict | None = None  # mean of the last logged training intervals (train_fit_from_log)

    @property
    def is_main(self) -> bool:
        return not self.sweep


def _load_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _first_existing(*paths: Path) -> Path | None:
    return next((p for p in paths if p.is_file()), None)


def _step_dirs(path: Path, stage: str) -> list[tuple[int, Path]]:
    """(N, folder) of ``<stage>_step<N>/`` folders with a results.json, by N."""
    out = []
    for d in path.glob(f"{stage}_step*"):
        suffix = d.name[len(stage) + len("_step"):]
        if suffix.isdigit() and (d / "results.json").is_file():
            out.append((int(suffix), d))
    return sorted(out)


def load_run(path: Path, label: str | None = None) -> RunRecord:
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
        label=label or str(path),
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
    for n, d in _step_dirs(path, "eval_sim"):
        record.sim_steps[n] = _load_json(d / "results.json")
    for n, d in _step_dirs(path, "eval_offline"):
        record.offline_steps[n] = _load_json(d / "results.json")["checkpoints"][0]
    if (path / COMMANDS_FILE).is_file():
        record.commands = read_commands(path / COMMANDS_FILE)
    log = _first_existing(path / "train_log_tail.txt", path / "train.log")
    if log is not None:
        record.train_fit = train_fit_from_log(log)
    return record


TRAIN_LOG_LINE = re.compile(r"\bstep:\S+ .*\bloss:")
TRAIN_LOG_VALUE = re.compile(r"(?<![\w/])([a-z][a-z0-9_]*):(-?[0-9.]+(?:e[-+]?[0-9]+)?)(?=\s|$)")
TRAIN_FIT_INTERVALS = 10


def train_fit_from_log(path: Path, n: int = TRAIN_FIT_INTERVALS) -> dict | None:
    """Mean of each metric over the last ``n`` lerobot-train log lines (each LeRobot's running average over one
    log interval of training batches), or None when the log has none. Read through the export's ``log_tail``, so
    a cache's train.log (every attempt of a resumed run; the last lines are the final training's) and an exported
    train_log_tail.txt give the same rows."""
    lines = [ln for ln in log_tail(path).splitlines() if TRAIN_LOG_LINE.search(ln)][-n:]
    if not lines:
        return None
    parsed = [dict((k, float(v)) for k, v in TRAIN_LOG_VALUE.findall(ln)) for ln in lines]
    keys = [k for k in parsed[-1] if all(k in p for p in parsed)]
    return {"intervals": len(parsed), **{k: sum(p[k] for p in parsed) / len(parsed) for k in keys}}


def collect_runs(paths: list[Path]) -> list[RunRecord]:
    run_dirs: list[tuple[Path, str]] = []
    for path in paths:
        if not path.is_dir():
            raise ReportError(f"{path} does not exist or is not a directory; expected a run or matrix directory.")
        if (path / "runs").is_dir():
            # Hidden folders are a matrix export in progress (renamed into place when complete).
            run_dirs += [(p, f"runs/{p.name}") for p in sorted((path / "runs").iterdir())
                         if p.is_dir() and not p.name.startswith(".")]
        else:
            run_dirs.append((path, str(path)))
    if not run_dirs:
        raise ReportError(f"no run directories found under {', '.join(map(str, paths))}.")
    runs = [load_run(p, label) for p, label in run_dirs]
    order = {v: i for i, v in enumerate(VARIANTS)}
    return sorted(runs, key=lambda r: (not r.is_main, order.get(r.variant, 9), r.seed or 0, r.name))


# --- formatting -------------------------------------------------------------------------------------------
def fmt(x, digits=3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return MISSING
    if isinstance(x, float):
        return f"{x:.{digits}f}" if abs(x) >= 10 ** -digits or x == 0 else f"{x:.1e}"
    return str(x)


def fmt_ci(value, ci, digits=3, pct=False) -> str:
    if value is None:
        return MISSING
    scale = 100 if pct else 1
    unit = "%" if pct else ""
    d = 0 if pct else digits
    text = f"{value * scale:.{d}f}{unit}"
    if ci:
        text += f" [{ci[0] * scale:.{d}f}, {ci[1] * scale:.{d}f}]"
    return text


def fmt_est(r: dict | None, digits=4, pct=False, diff=False) -> str:
    """A ``stats`` result as "value [lo, hi]", "value (n too small)" or MISSING; pct: %, or pp for a difference."""
    if not r or r.get("value") is None:
        return MISSING
    scale, d = (100, 0 if not diff else 1) if pct else (1, digits)
    spec = f"{'+' if diff else ''}.{d}f"
    unit = (" pp" if diff else "%") if pct else ""
    text = f"{format(r['value'] * scale, spec)}{unit}"
    if r.get("ci95"):
        lo, hi = r["ci95"]
        text += f" [{format(lo * scale, spec)}, {format(hi * scale, spec)}]"
    elif r.get("too_small"):
        text += f" ({stats.TOO_SMALL})"
    return text


def fmt_seeds(seeds) -> str:
    return ", ".join(str(s) for s in seeds) if seeds else MISSING


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def closed_loop_world(overall: dict) -> tuple[dict, dict | None, float | None, float | None, list[str]]:
    """Closed-loop world accuracy per k, copy baseline per k (None in results written before it existed),
    and both means over the horizons where both are defined (as offline's "avg"), with those horizons:
    the two averages always cover the same k."""
    acc = overall["world_accuracy"]
    copy = overall.get("world_copy_baseline")
    ks = [k for k, v in acc.items() if v is not None and (copy is None or copy.get(k) is not None)]
    acc_avg = stats.mean_over_k(acc, ks)
    copy_avg = stats.mean_over_k(copy, ks) if copy else None
    return acc, copy, acc_avg, copy_avg, ks


def pairs_text(per_k: dict | None) -> str:
    """Pairs scored per k: one number when every horizon has the same count, else the range."""
    counts = [c for c in (per_k or {}).values() if c is not None]
    if not counts:
        return MISSING
    return str(counts[0]) if min(counts) == max(counts) else f"{min(counts)}–{max(counts)}"


# --- units and the study's seed sets --------------------------------------------------------------------
def sim_units(result: dict | None, where: str) -> dict | None:
    """Closed-loop episodes keyed by (suite, task_id, init_state_id, env seed); None without episode records."""
    if not result or result.get("episodes") is None:
        return None
    out = {}
    for e in result["episodes"]:
        key = (e["suite"], int(e["task_id"]), e.get("init_state_id"), e.get("seed"))
        if key in out:
            raise ReportError(
                f"{where}: two episodes share suite/task/init state/seed {key}; episodes cannot be paired."
            )
        out[key] = e
    return out


def offline_units(offline: dict | None) -> dict | None:
    """Held-out episodes keyed by episode index; None for results written before per-episode sums."""
    if not offline or offline.get("per_episode") is None:
        return None
    return {int(e["episode_index"]): e for e in offline["per_episode"]}


@dataclass
class Study:
    """Main runs per arm and kind of result, and the seeds every arm has (the only ones compared)."""

    runs: list[RunRecord]
    n_bootstrap: int = stats.N_BOOTSTRAP
    rng_seed: int = 0
    arms: dict = field(default_factory=dict)  # kind ("sim" | "offline") -> arm -> seed -> RunRecord
    seeds: dict = field(default_factory=dict)  # kind -> sorted seeds common to every arm with that kind

    def __post_init__(self):
        for kind in ("sim", "offline"):
            arms: dict = {}
            for r in self.runs:
                if not (r.is_main and r.variant in VARIANTS and getattr(r, kind)):
                    continue
                by_seed = arms.setdefault(r.variant, {})
                if r.seed in by_seed:
                    raise ReportError(
                        f"two main runs of arm {r.variant} with seed {r.seed} ({by_seed[r.seed].path} and {r.path}); "
                        "pass only one of them."
                    )
                by_seed[r.seed] = r
            common = set.intersection(*(set(v) for v in arms.values())) if arms else set()
            self.arms[kind] = {v: arms[v] for v in VARIANTS if v in arms}
            self.seeds[kind] = sorted(common, key=stats.sort_key)

    def extra(self) -> list[tuple[RunRecord, str]]:
        """(run, kind) of main runs whose seed is not shared by every arm: reported apart, never pooled."""
        out = []
        for kind in ("offline", "sim"):
            for arm, by_seed in self.arms[kind].items():
                for seed, r in sorted(by_seed.items(), key=lambda x: stats.sort_key(x[0])):
                    if seed not in self.seeds[kind]:
                        out.append((r, kind))
        return out

    def boot(self, num, den, seeds, strata) -> dict:
        return stats.hierarchical_bootstrap(num, den, seeds, strata, n_bootstrap=self.n_bootstrap, rng_seed=self.rng_seed)

    def paired(self, u: "_Pairs") -> dict:
        return stats.paired_difference(
            u.na, u.da, u.nb, u.db, u.seeds, u.strata, n_bootstrap=self.n_bootstrap, rng_seed=self.rng_seed
        )


@dataclass
class _Pairs:
    """Matched units of two arms (or clean vs corrupted), in a deterministic order."""

    seeds: list = field(default_factory=list)
    strata: list = field(default_factory=list)
    na: list = field(default_factory=list)
    da: list = field(default_factory=list)
    nb: list = field(default_factory=list)
    db: list = field(default_factory=list)
    only_a: int = 0
    only_b: int = 0
    missing: list = field(default_factory=list)  # runs without per-episode records

    def add(self, seed, stratum, na, da, nb, db):
        self.seeds.append(seed)
        self.strata.append(stratum)
        self.na.append(float(na))
        self.da.append(float(da))
        self.nb.append(float(nb))
        self.db.append(float(db))

    def note(self) -> str:
        parts = []
        if self.only_a or self.only_b:
            parts.append(f"{self.only_a + self.only_b} unmatched episode(s) excluded ({self.only_a} / {self.only_b})")
        if self.missing:
            parts.append(f"no per-episode records in {', '.join(self.missing)}")
        return "; ".join(parts)


def _match(u: _Pairs, seed, ua: dict, ub: dict, add) -> None:
    keys, only_a, only_b = stats.match_units(ua, ub)
    u.only_a += len(only_a)
    u.only_b += len(only_b)
    for k in keys:
        add(seed, k, ua[k], ub[k])


def sim_pairs(study: Study, a: str, b: str) -> _Pairs:
    """Closed-loop success of arms a and b on the same (seed, suite, task, init state, env seed)."""
    u = _Pairs()
    for s in study.seeds["sim"]:
        ra, rb = study.arms["sim"][a][s], study.arms["sim"][b][s]
        ua, ub = sim_units(ra.sim, ra.name), sim_units(rb.sim, rb.name)
        if ua is None or ub is None:
            u.missing += [r.name for r, x in ((ra, ua), (rb, ub)) if x is None]
            continue
        _match(u, s, ua, ub, lambda s, k, ea, eb: u.add(s, k[:2], ea["success"], 1, eb["success"], 1))
    return u


def offline_pairs(study: Study, a: str, b: str, num_a=lambda e: e["se_sum"], num_b=lambda e: e["se_sum"]) -> _Pairs:
    """Offline normalized MSE of arms a and b on the same (seed, held-out episode)."""
    u = _Pairs()
    for s in study.seeds["offline"]:
        ra, rb = study.arms["offline"][a][s], study.arms["offline"][b][s]
        ua, ub = offline_units(ra.offline), offline_units(rb.offline)
        if ua is None or ub is None:
            u.missing += [r.name for r, x in ((ra, ua), (rb, ub)) if x is None]
            continue
        _match(u, s, ua, ub, lambda s, k, ea, eb: u.add(s, ea.get("task_index"), num_a(ea), ea["n_values"],
                                                        num_b(eb), eb["n_values"]))
    return u


def sim_corruption_pairs(study: Study, arm: str, mode: str) -> tuple[_Pairs, list]:
    """Corrupted vs clean closed-loop success of one arm, episode by episode; and the seeds that have the mode."""
    u, seeds = _Pairs(), []
    for s in study.seeds["sim"]:
        r = study.arms["sim"][arm][s]
        if mode not in r.sim_corrupted:
            continue
        seeds.append(s)
        uc, uk = sim_units(r.sim_corrupted[mode], f"{r.name} ({mode})"), sim_units(r.sim, r.name)
        if uc is None or uk is None:
            u.missing.append(r.name)
            continue
        _match(u, s, uc, uk, lambda s, k, ec, ek: u.add(s, k[:2], ec["success"], 1, ek["success"], 1))
    return u, seeds


def _world_sum(w: dict | None, key: str) -> int | None:
    v = (w or {}).get(key)
    return None if v is None else int(sum(v))


# --- per-arm numbers --------------------------------------------------------------------------------------
def arm_success(study: Study, arm: str, task: tuple | None = None) -> dict | None:
    seeds, strata, num = [], [], []
    for s in study.seeds["sim"]:
        r = study.arms["sim"][arm][s]
        units = sim_units(r.sim, r.name)
        if units is None:
            return None
        for key in sorted(units, key=stats.sort_key):
            if task is None or key[:2] == task:
                seeds.append(s)
                strata.append(key[:2])
                num.append(float(units[key]["success"]))
    return study.boot(num, None, seeds, strata) if seeds else None


def arm_offline(study: Study, arm: str, num=lambda e: e["se_sum"], den=lambda e: e["n_values"]) -> dict | None:
    seeds, strata, nums, dens = [], [], [], []
    for s in study.seeds["offline"]:
        units = offline_units(study.arms["offline"][arm][s].offline)
        if units is None:
            return None
        for k in sorted(units):
            e = units[k]
            n, d = num(e), den(e)
            if n is None or d is None:
                return None
            seeds.append(s)
            strata.append(e.get("task_index"))
            nums.append(n)
            dens.append(d)
    return study.boot(nums, dens, seeds, strata) if seeds else None


def arm_sim_world(study: Study, arm: str, num_key: str, den_key: str) -> dict | None:
    """Closed-loop world hits pooled over k and episodes (per-episode records), hierarchical interval."""
    seeds, strata, nums, dens = [], [], [], []
    for s in study.seeds["sim"]:
        r = study.arms["sim"][arm][s]
        units = sim_units(r.sim, r.name) or {}
        for key in sorted(units, key=stats.sort_key):
            w = units[key].get("world")
            if not w:
                continue
            n, d = _world_sum(w, num_key), _world_sum(w, den_key)
            if n is None or d is None:
                return None  # records from before the field existed
            seeds.append(s)
            strata.append(key[:2])
            nums.append(n)
            dens.append(d)
    return study.boot(nums, dens, seeds, strata) if seeds and sum(dens) else None


def _seed_note(seeds) -> str:
    if not seeds:
        return "no seed common to every arm"
    return f"seeds {fmt_seeds(seeds)}" + (f" ({stats.ONE_SEED})" if len(seeds) == 1 else "")


# --- sections -----------------------------------------------------------------------------------------------
def config_section(runs: list[RunRecord]) -> list[str]:
    rows = []
    for r in runs:
        p, t = r.policy, r.train
        world_in, world_loss, where = ARCH.get(r.variant, ("?", "?", "?"))
        uses_world = r.variant in ("B", "C", "C_no_world_input")
        rows.append([
            r.name, r.variant, world_in, world_loss, where, fmt(r.seed),
            fmt(p.get("future_offset")) if uses_world else MISSING,
            fmt(p.get("world_vocab_size")) if uses_world else MISSING,
            f"{fmt(p.get('world_context'))} (s={fmt(p.get('world_context_stride'))})" if r.variant == "C" else MISSING,
            fmt(p.get("lambda_world")) if uses_world else MISSING,
            f"{p.get('dim_model', '?')}/{p.get('n_encoder_layers', '?')}/{p.get('n_decoder_layers', '?')}",
            f"{p.get('chunk_size', '?')}/{p.get('n_action_steps', '?')}",
            fmt(t.get("steps")), fmt(t.get("batch_size")),
        ])
    header = ["run", "variant", "world input", "world loss", "prediction", "seed", "K", "V", "ctx (stride)",
              "λ_world", "dim/enc/dec", "chunk/exec", "steps", "batch"]
    return ["## 1. Configurations", "", *table(header, rows), "", *training_fit_section(runs)]


def training_fit_section(runs: list[RunRecord]) -> list[str]:
    """How well each run fits its own training batches at the end: tells under-fitting (a high training loss)
    from over-fitting (a low one beside a high held-out error in section 3)."""
    rows = []
    for r in runs:
        f = r.train_fit
        if not f or "l1_loss" not in f:
            continue
        step = f.get("updt_s", 0.0) + f.get("data_s", 0.0)
        rows.append([r.name, str(f["intervals"]), fmt(f["l1_loss"]), fmt(f.get("world_ce")), fmt(f.get("world_top1")),
                     fmt(f.get("grdn"), 2), fmt(step) if step else MISSING,
                     f"{f['data_s'] / step:.1%}" if step and "data_s" in f else MISSING])
    if not rows:
        return []
    return ["### Training fit", "",
            f"Mean of the last {TRAIN_FIT_INTERVALS} lerobot-train log lines before the final checkpoint (each "
            "LeRobot's running average over one log interval of training batches): L1 action loss (normalized), "
            "world cross-entropy and top-1 on training batches, gradient norm, and the step time on the machine that "
            "trained it. Training-batch numbers show fit, not generalization (section 3 has the held-out ones).", "",
            *table(["run", "intervals", "L1 (train)", "world CE (train)", "world top-1 (train)", "grad norm",
                    "s/step", "data share"], rows), ""]


def seeds_section(study: Study) -> list[str]:
    out = ["## 2. Seeds", "",
           "The training seed is the unit. Per-arm numbers and comparisons use only the seeds every arm has "
           f"(closed loop and offline separately); a run with another seed is listed here and never pooled. "
           f"Intervals below {stats.MIN_UNITS} resampled units are not printed (\"{stats.TOO_SMALL}\").", ""]
    rows = []
    for kind, label in (("offline", "offline"), ("sim", "closed loop")):
        arms = study.arms[kind]
        if arms:
            rows.append([label, ", ".join(arms), fmt_seeds(study.seeds[kind]),
                         "; ".join(f"{a}: {fmt_seeds(sorted(v, key=stats.sort_key))}" for a, v in arms.items())])
    out += table(["results", "arms", "seeds compared", "seeds per arm"], rows) if rows else ["No results found."]
    extra = study.extra()
    if extra:
        out += ["", f"### Runs with {EXTRA}", ""]
        erows = []
        for r, kind in extra:
            if kind == "offline":
                m = r.offline["action"]["normalized"]["mse"]
                erows.append([r.name, r.variant, fmt(r.seed), "offline", f"MSE (norm.) {fmt(m['value'], 4)}"])
            else:
                o = r.sim["overall"]
                erows.append([r.name, r.variant, fmt(r.seed), "closed loop",
                              f"success {o['n_success']}/{o['n_episodes']}"])
        out += table(["run", "arm", "seed", "results", "value (this checkpoint only)"], erows)
    return out + [""]


def _run_small(o: dict) -> bool:
    """One checkpoint's offline intervals withheld: flagged by eval-offline, or (older files) too few episodes."""
    iv = o.get("intervals")
    return bool(iv["too_small"]) if iv else o["action"]["n_episodes"] < stats.MIN_UNITS


def _run_ci(value, ci, small: bool, digits=3) -> str:
    if value is None:
        return MISSING
    return fmt(value, digits) + f" ({stats.TOO_SMALL})" if small else fmt_ci(value, ci, digits)


def offline_section(study: Study) -> list[str]:
    runs = study.runs
    rows, dim_rows, world_rows, corr_rows, dim_names = [], [], [], [], None
    for r in runs:
        o = r.offline
        if not o:
            continue
        small = _run_small(o)
        a = o["action"]
        n, raw = a["normalized"], a["raw"]
        rows.append([
            r.name, fmt(r.seed), str(a["n_episodes"]), str(a["n_frames"]),
            _run_ci(n["mse"]["value"], n["mse"]["ci95"], small, 4), _run_ci(n["l1"]["value"], n["l1"]["ci95"], small, 4),
            _run_ci(n["first_step_mse"]["value"], n["first_step_mse"]["ci95"], small, 4),
            _run_ci(raw["mse"]["value"], raw["mse"]["ci95"], small, 4),
        ])
        dims = n.get("per_dim")
        if dims:
            dim_names = dim_names or dims["names"]
            cis = dims.get("mse_ci95") or [None] * len(dims["mse"])
            dim_rows.append([r.name, fmt(r.seed), *[_run_ci(v, ci, small, 4) for v, ci in zip(dims["mse"], cis, strict=True)]])
        w = o.get("world")
        if w:
            avg, pk = w["avg"], w["per_k"]
            world_rows.append([
                r.name, str(w["K"]), str(w["vocab_size"]),
                _run_ci(avg["top1"], avg.get("top1_ci95"), small), fmt(avg["top5"]), fmt(avg["copy"]),
                fmt(avg.get("bigram_top1")),
                fmt(avg.get("top1_changed")), fmt(avg.get("top5_changed")),
                fmt((w.get("pooled") or {}).get("n_changed")),
                " ".join(fmt(k["top1"], 2) for k in pk), " ".join(fmt(k["copy"], 2) for k in pk),
                " ".join(fmt(k.get("top1_changed"), 2) for k in pk),
            ])
        c = o.get("corruption")
        if c:
            modes = c["modes"]
            corr_rows.append([
                r.name, "yes" if c["uses_world_input"] else "no", fmt(c["clean_mse"], 4),
                *[f"{fmt(modes[m]['mse'], 4)} (×{_run_ci(modes[m]['ratio'], modes[m].get('ratio_ci95'), small)})"
                  for m in CORRUPTIONS],
            ])
    if not rows:
        return ["## 3. Offline evaluation", "", "No offline results found (`<run>/eval_offline/results.json`).", ""]
    seeds = study.seeds["offline"]
    out = ["## 3. Offline evaluation (held-out episodes)", "",
           "### Per arm", "",
           f"Normalized action MSE over the full predicted chunk (non-padded steps), pooled over {_seed_note(seeds)}; "
           "95% hierarchical bootstrap (seeds, then held-out episodes within seed and task). World top-1 is pooled "
           "over k and held-out pairs; \"changed\" = only the pairs with w_{t+k} != w_t, where copying scores 0.", ""]
    arm_rows = []
    for arm in study.arms["offline"]:
        mse = arm_offline(study, arm)
        n_eps = sum(len(offline_units(study.arms["offline"][arm][s].offline) or {}) for s in seeds)
        world = [
            arm_offline(study, arm, lambda e: _world_sum(e.get("world"), "top1"), lambda e: _world_sum(e.get("world"), "valid")),
            arm_offline(study, arm, lambda e: _world_sum(e.get("world"), "copy"), lambda e: _world_sum(e.get("world"), "valid")),
            arm_offline(study, arm, lambda e: _world_sum(e.get("world"), "top1_changed"),
                        lambda e: _world_sum(e.get("world"), "changed")),
        ] if arm != "A" else [None, None, None]
        arm_rows.append([arm, fmt_seeds(seeds), str(n_eps) if mse else MISSING,
                         fmt_est(mse) if mse else "no per-episode sums", *[fmt_est(x, 3) for x in world]])
    out += table(["arm", "seeds", "held-out episodes", "MSE (norm.) [95% CI]", "world top-1", "copy",
                  "top-1 on changed pairs (copy = 0)"], arm_rows)
    out += ["", "### Per run", "",
            "Each checkpoint's own numbers (eval-offline's episode bootstrap; one checkpoint = one seed).", ""]
    out += table(["run", "seed", "episodes", "frames", "MSE (norm.)", "L1 (norm.)", "first-step MSE (norm.)",
                  "MSE (raw)"], rows)
    if dim_rows and all(len(row) == len(dim_names) + 2 for row in dim_rows):
        out += ["", "Normalized action MSE per action dimension (same chunks, eval-offline's episode bootstrap): "
                "where an arm's error differs, it shows which part of the action carries the difference.", ""]
        out += table(["run", "seed", *dim_names], dim_rows)
    if world_rows:
        out += ["", "### World-token prediction (per run)", "",
                "Top-1/top-5 averaged over horizons k = 1..K, beside the copy baseline P(w_t = w_{t+k}) and the "
                "bigram baseline on the same held-out pairs; \"changed\" columns: only the pairs with "
                "w_{t+k} != w_t (copy baseline 0 there by definition); per-k columns list k = 1..K.", ""]
        out += table(["run", "K", "V", "top-1", "top-5", "copy", "bigram top-1", "top-1 changed", "top-5 changed",
                      "changed pairs", "top-1 per k", "copy per k", "top-1 changed per k"], world_rows)
    if corr_rows:
        out += ["", "## 4. World corruption (offline)", "",
                "Normalized action MSE with the world input replaced (random ids / batch shuffle / mask id); "
                "(×ratio) = corrupted / clean for this checkpoint. Variants without world input go through the "
                "same code path: their ratio is measured, not written in.", ""]
        out += table(["run", "world input", "clean MSE", "random", "shuffle", "mask"], corr_rows)
        crow = []
        for arm in study.arms["offline"]:
            cells = []
            for m in CORRUPTIONS:
                u = offline_pairs(study, arm, arm, num_a=lambda e, m=m: e["corrupted_se_sum"][m])
                cells.append(fmt_est(study.paired(u), 4, diff=True) if u.seeds else MISSING)
            crow.append([arm, fmt_seeds(seeds), *cells])
        out += ["", f"Per arm, paired on the same held-out episodes ({_seed_note(seeds)}): corrupted − clean "
                "normalized MSE [95% hierarchical bootstrap].", ""]
        out += table(["arm", "seeds", "random", "shuffle", "mask"], crow)
    return out + [""]


def sim_section(study: Study) -> list[str]:
    sims = [r for r in study.runs if r.sim]
    if not sims:
        return ["## 5. Closed-loop LIBERO evaluation", "", "No closed-loop results found (`<run>/eval_sim/results.json`).", ""]
    seeds = study.seeds["sim"]
    rows, world_rows = [], []
    for r in sims:
        o = r.sim["overall"]
        within = o.get("success_within", {})
        rows.append([
            r.name, fmt(r.seed), str(o["n_episodes"]), fmt_ci(o["success_rate"], o["ci95"], pct=True),
            fmt(o.get("mean_length"), 1), fmt(o.get("goal_fraction"), 2), fmt(o.get("jerk"), 4),
            fmt(o.get("chunk_jump_boundary"), 4), fmt(o.get("chunk_jump_within"), 4),
            " ".join(f"{t}:{fmt(v, 2)}" for t, v in within.items()),
        ])
        if o.get("world_accuracy"):
            acc, copy, acc_avg, copy_avg, ks = closed_loop_world(o)
            changed = o.get("world_changed_accuracy")
            world_rows.append([
                r.name, fmt(acc_avg), fmt(copy_avg), fmt(stats.mean_over_k(o.get("world_top5_accuracy"), ks)),
                fmt(stats.mean_over_k(changed, ks)), fmt(stats.mean_over_k(o.get("world_changed_top5_accuracy"), ks)),
                " ".join(f"k{k}:{fmt(v, 2)}" for k, v in acc.items()),
                " ".join(f"k{k}:{fmt(copy.get(k), 2)}" for k in acc) if copy else MISSING,
                " ".join(f"k{k}:{fmt(changed.get(k), 2)}" for k in acc) if changed else MISSING,
                pairs_text(o.get("world_pairs")), pairs_text(o.get("world_changed_pairs")),
            ])
    first = sims[0].sim
    out = ["## 5. Closed-loop LIBERO evaluation", "",
           f"LeRobot's LIBERO env and processors, LIBERO's fixed init states; max {first['env'].get('max_steps')} "
           f"steps; eval seed {first.get('seed')} ({first.get('episode_seeds')}).", "",
           "### Per arm", "",
           f"Success pooled over {_seed_note(seeds)}; 95% hierarchical bootstrap (seeds, then episodes within "
           "seed and task).", ""]
    arm_rows, tasks = [], set()
    for arm in study.arms["sim"]:
        for s in seeds:
            tasks |= {k[:2] for k in sim_units(study.arms["sim"][arm][s].sim, arm) or {}}
    tasks = sorted(tasks, key=stats.sort_key)
    for arm in study.arms["sim"]:
        est = arm_success(study, arm)
        arm_rows.append([arm, fmt_seeds(seeds), str(est["n_units"]) if est else MISSING,
                         fmt_est(est, pct=True) if est else "no per-episode records"])
    out += table(["arm", "seeds", "episodes", "success [95% CI]"], arm_rows)
    if tasks:
        trows = []
        for t in tasks:
            trows.append([f"{t[0]} #{t[1]}", *[fmt_est(arm_success(study, arm, t), pct=True) for arm in study.arms["sim"]]])
        out += ["", "Per task (same seeds; episodes within seed resampled):", ""]
        out += table(["task", *study.arms["sim"]], trows)
    out += ["", "### Per run", "",
            "Each checkpoint's own numbers: success with eval-sim's 95% Wilson interval (one checkpoint); goal = "
            "share of the task's BDDL goal predicates true at the end; jerk = mean |a[t+1]-2a[t]+a[t-1]|; chunk "
            "jump = mean |a[t]-a[t-1]| at chunk-start steps vs within chunks; success within T steps.", ""]
    out += table(["run", "seed", "episodes", "success [Wilson]", "length", "goal", "jerk", "jump@chunk",
                  "jump within", "success within T"], rows)
    task_rows = []
    for r in sims:
        for t in r.sim["per_task"]:
            task_rows.append([r.name, f"{t['suite']} #{t['task_id']}", t["task"], str(t["n_episodes"]),
                              fmt_ci(t["success_rate"], t["ci95"], pct=True)])
    out += ["", "Per task and run:", ""] + table(["run", "task", "instruction", "episodes", "success [Wilson]"], task_rows)
    if world_rows:
        out += ["", "### Closed-loop world accuracy", "",
                "Token predicted at step t for t+k vs the token observed at t+k, beside the copy baseline "
                "(token observed at t = token observed at t+k) on the same pairs; \"changed\" = only the pairs "
                "where the observed token changed (copy = 0 there by definition); averages are means over "
                "k = 1..K; — where the policy or an older results.json gives no such count.", ""]
        out += table(["run", "accuracy", "copy", "top-5", "changed", "changed top-5", "accuracy per k",
                      "copy per k", "changed per k", "pairs per k", "changed pairs per k"], world_rows)
        wrows = []
        for arm in study.arms["sim"]:
            acc = arm_sim_world(study, arm, "correct", "count")
            if acc is None:
                continue
            wrows.append([arm, fmt_est(acc, 3), fmt_est(arm_sim_world(study, arm, "copy_correct", "count"), 3),
                          fmt_est(arm_sim_world(study, arm, "changed_correct", "changed_count"), 3)])
        if wrows:
            out += ["", f"Per arm, pooled over k and episodes ({_seed_note(seeds)}; hierarchical bootstrap):", ""]
            out += table(["arm", "accuracy", "copy", "accuracy on changed pairs (copy = 0)"], wrows)
    corr_rows = []
    for arm in study.arms["sim"]:
        for mode in CORRUPTIONS:
            u, mseeds = sim_corruption_pairs(study, arm, mode)
            if not mseeds:
                continue
            d = study.paired(u) if u.seeds else None
            mc = stats.mcnemar_exact(u.na, u.nb)
            corr_rows.append([arm, mode, fmt_seeds(mseeds), str(len(u.seeds)), fmt_est({"value": d and d["b"]}, pct=True),
                              fmt_est({"value": d and d["a"]}, pct=True), fmt_est(d, pct=True, diff=True),
                              f"{mc['b']}/{mc['c']}, p={fmt(mc['p_value'])}", u.note() or MISSING])
    if corr_rows:
        out += ["", "### Closed-loop world corruption", "",
                "`eval_sim_<mode>` paired with the clean run episode by episode (same seed, task, init state, env "
                "seed); difference = corrupted − clean success [95% hierarchical bootstrap]; McNemar: "
                "corrupted-only / clean-only successes, exact two-sided p.", ""]
        out += table(["arm", "mode", "seeds", "pairs", "clean", "corrupted", "difference", "McNemar", "note"], corr_rows)
    return out + [""]


def videos_section(runs: list[RunRecord], out_dir: Path) -> list[str]:
    """One clean closed-loop rollout per run, linked relative to the report: the smallest video its eval-sim
    recorded (the one a matrix export keeps), with the episode it shows."""
    rows = []
    for r in runs:
        if not (r.is_main and r.sim):
            continue
        found = [(ep, r.path / "eval_sim" / ep["video"]) for ep in r.sim.get("episodes", []) if ep.get("video")]
        found = [(f.stat().st_size, f.name, ep, f) for ep, f in found if f.is_file()]
        if not found:
            continue
        _, _, ep, f = min(found, key=lambda x: (x[0], x[1]))
        link = Path(os.path.relpath(f, out_dir)).as_posix()
        rows.append([r.name, f"{ep['suite']} #{ep['task_id']}", str(ep.get("init_state_id", MISSING)),
                     "success" if ep.get("success") else "failure", str(ep.get("length", MISSING)), f"[{f.name}]({link})"])
    if not rows:
        return []
    return ["### Rollout videos", "",
            "One clean closed-loop episode per run (the smallest video eval-sim recorded, the one an exported run "
            "keeps, re-encoded smaller when it was over 2 MiB): a success or a characteristic failure, from the same "
            "fixed init states as the tables.", "",
            *table(["run", "task", "init state", "outcome", "steps", "video"], rows), ""]


# --- calibration: success vs training steps ---------------------------------------------------------------
def calibration_points(runs: list[RunRecord]) -> dict:
    """arm -> step -> {"sim": [(seed, run, results)], "offline": [(seed, run, entry)]} for runs with
    earlier-checkpoint evaluations; the final checkpoint (eval_sim / eval_offline) is the point at the
    run's training steps. A sweep run is its own curve, "ARM (key=value)", never pooled with its arm."""
    out: dict = {}
    for r in runs:
        if not (r.sim_steps or r.offline_steps):
            continue
        final = r.train.get("steps")
        sims, offs = dict(r.sim_steps), dict(r.offline_steps)
        if isinstance(final, int):
            if r.sim and r.sim_steps:
                sims.setdefault(final, r.sim)
            if r.offline and r.offline_steps:
                offs.setdefault(final, r.offline)
        arm = out.setdefault(r.variant if r.is_main else f"{r.variant} ({_sweep_text(r.sweep)})", {})
        for n, res in sims.items():
            arm.setdefault(n, {"sim": [], "offline": []})["sim"].append((r.seed, r, res))
        for n, res in offs.items():
            arm.setdefault(n, {"sim": [], "offline": []})["offline"].append((r.seed, r, res))
    order = {v: i for i, v in enumerate(VARIANTS)}
    return {a: dict(sorted(out[a].items()))
            for a in sorted(out, key=lambda v: (order.get(v.split(" ")[0], 9), v))}


def _sweep_text(sweep: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sweep.items())


def calibration_estimates(study: Study, points: dict) -> dict:
    """arm -> step -> {"sim": success estimate, "offline": MSE estimate, seeds, episodes}, hierarchical bootstrap
    (seeds, then episodes within seed and task), as for the per-arm tables."""
    out: dict = {}
    for arm, steps in points.items():
        for n, p in steps.items():
            e = {"sim": None, "offline": None, "sim_seeds": [], "offline_seeds": []}
            seeds, strata, num = [], [], []
            for seed, r, res in sorted(p["sim"], key=lambda x: stats.sort_key(x[0])):
                units = sim_units(res, f"{r.name} step {n}") or {}
                for key in sorted(units, key=stats.sort_key):
                    seeds.append(seed)
                    strata.append(key[:2])
                    num.append(float(units[key]["success"]))
                e["sim_seeds"].append(seed)
            if seeds:
                e["sim"] = study.boot(num, None, seeds, strata)
            seeds, strata, nums, dens = [], [], [], []
            for seed, r, entry in sorted(p["offline"], key=lambda x: stats.sort_key(x[0])):
                units = offline_units(entry) or {}
                for k in sorted(units):
                    seeds.append(seed)
                    strata.append(units[k].get("task_index"))
                    nums.append(units[k]["se_sum"])
                    dens.append(units[k]["n_values"])
                e["offline_seeds"].append(seed)
            if seeds:
                e["offline"] = study.boot(nums, dens, seeds, strata)
            out.setdefault(arm, {})[n] = e
    return out


def calibration_section(estimates: dict, sources: list[str] = ()) -> list[str]:
    if not estimates:
        return []
    rows = []
    for arm, steps in estimates.items():
        for n, e in steps.items():
            rows.append([arm, str(n),
                         fmt_seeds(e["sim_seeds"]) if e["sim"] else MISSING, str(e["sim"]["n_units"]) if e["sim"] else MISSING,
                         fmt_est(e["sim"], pct=True) if e["sim"] else MISSING,
                         fmt_seeds(e["offline_seeds"]) if e["offline"] else MISSING,
                         fmt_est(e["offline"]) if e["offline"] else MISSING])
    return ["## Calibration: success vs training steps", "",
            "Each row evaluates the checkpoint lerobot-train saved at that step (`<run>/eval_sim_step<N>`, "
            "`<run>/eval_offline_step<N>`; the last row of a run is its final checkpoint). world_vla trains at a "
            "constant learning rate (no scheduler), so checkpoint N of a longer run stands for a run of budget N; "
            "the points of one run share its training, so they are not independent. Success: closed-loop episodes "
            "pooled over the seeds listed, 95% hierarchical bootstrap (seeds, then episodes within seed and task); "
            "offline: normalized action MSE on the held-out episodes, same bootstrap."
            + "".join(f" Rows of an arm marked `({src})` come from the separate calibration trainings in `{src}` "
                      "(listed under Provenance); they are never pooled into the tables or comparisons above."
                      for src in sources), "",
            *table(["arm", "steps", "closed-loop seeds", "episodes", "success [95% CI]", "offline seeds",
                    "MSE (norm.) [95% CI]"], rows), ""]


def _save_figure(fig, path: Path) -> None:
    """Every report plot is written the same way (tight layout, 120 dpi) and its figure freed."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def calibration_plot(estimates: dict, out_dir: Path) -> str | None:
    if not estimates:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in ("sim", "offline") if any(e[k] for steps in estimates.values() for e in steps.values())]
    fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 4), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        for arm, steps in estimates.items():
            pts = [(n, e[kind]) for n, e in steps.items() if e[kind] and e[kind].get("value") is not None]
            if not pts:
                continue
            xs = [n for n, _ in pts]
            ys = [r["value"] for _, r in pts]
            lo = [r["value"] - r["ci95"][0] if r.get("ci95") else 0.0 for _, r in pts]
            hi = [r["ci95"][1] - r["value"] if r.get("ci95") else 0.0 for _, r in pts]
            ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=arm)
        ax.set_xlabel("training steps")
        if kind == "sim":
            ax.set_ylabel("closed-loop success"), ax.set_ylim(-0.02, 1.02)
            ax.set_title("Success vs training steps (95% CI)")
        else:
            ax.set_ylabel("held-out action MSE (norm.)")
            ax.set_title("Offline MSE vs training steps (95% CI)")
        ax.legend(fontsize=7)
    _save_figure(fig, out_dir / "calibration.png")
    return "calibration.png"


def comparisons(study: Study) -> list[dict]:
    """The three named comparisons, each on the seeds every arm has."""
    out = []
    for a, b, what in COMPARISONS:
        item = {"a": a, "b": b, "what": what, "offline": None, "sim": None}
        if a in study.arms["offline"] and b in study.arms["offline"] and study.seeds["offline"]:
            u = offline_pairs(study, a, b)
            item["offline"] = {"diff": study.paired(u) if u.seeds else None, "note": u.note(),
                               "seeds": study.seeds["offline"]}
        if a in study.arms["sim"] and b in study.arms["sim"] and study.seeds["sim"]:
            u = sim_pairs(study, a, b)
            item["sim"] = {"diff": study.paired(u) if u.seeds else None, "note": u.note(),
                           "mcnemar": stats.mcnemar_exact(u.na, u.nb), "seeds": study.seeds["sim"]}
        out.append(item)
    return out


def comparisons_section(items: list[dict]) -> list[str]:
    rows = []
    for c in items:
        name = f"{c['a']} vs {c['b']} ({c['what']})"
        o, s = c["offline"], c["sim"]
        od = o and o["diff"]
        sd = s and s["diff"]
        rows.append([
            name,
            fmt_seeds(o["seeds"]) if o else MISSING, str(od["n_units"]) if od else MISSING, fmt_est(od, 4, diff=True),
            fmt_seeds(s["seeds"]) if s else MISSING, str(sd["n_units"]) if sd else MISSING, fmt_est(sd, pct=True, diff=True),
            f"{s['mcnemar']['b']}/{s['mcnemar']['c']}, p={fmt(s['mcnemar']['p_value'])}" if s else MISSING,
            "; ".join(x for x in ((o or {}).get("note"), (s or {}).get("note")) if x) or MISSING,
        ])
    return ["## 6. Comparisons between arms", "",
            "Paired differences, first arm − second, with 95% hierarchical-bootstrap intervals (the same resample "
            "for both arms). Offline: normalized action MSE on the same held-out episodes of the same seed "
            "(negative = the first arm errs less). Closed loop: success on the same (seed, task, init state, env "
            "seed), in percentage points; McNemar = discordant pairs (first arm only / second arm only) pooled "
            "over seeds, exact two-sided p.", "",
            *table(["comparison", "offline seeds", "episodes", "Δ MSE (norm.)", "closed-loop seeds", "pairs",
                    "Δ success", "McNemar", "note"], rows), ""]


def _verdict(d: dict | None) -> str:
    if not d or d.get("value") is None:
        return "nothing to compare"
    if d["ci95"] is None:
        return f"{stats.TOO_SMALL} for an interval ({d['n_units']} units): no claim"
    if d["excludes_zero"]:
        return "the interval excludes 0"
    return "the interval includes 0: no effect claimed"


def interpretation(study: Study, items: list[dict]) -> list[str]:
    """Statements the paired intervals support, and nothing more."""
    lines = ["## 7. What the numbers support", ""]
    for kind, label in (("offline", "Offline"), ("sim", "Closed loop")):
        seeds = study.seeds[kind]
        if study.arms[kind] and len(seeds) == 1:
            lines.append(f"- {label}: one seed ({fmt_seeds(seeds)}): every statement below about {label.lower()} "
                         "results compares checkpoints, not methods.")
        elif study.arms[kind] and not seeds:
            lines.append(f"- {label}: no seed is shared by every arm: no comparison.")
    for c in items:
        name = f"{c['a']} vs {c['b']} ({c['what']})"
        o = c["offline"]
        if o and o["diff"]:
            d = o["diff"]
            text = f"- Offline action MSE, {name}: {c['a']} {fmt(d['a'], 4)} vs {c['b']} {fmt(d['b'], 4)}, difference {fmt_est(d, 4, diff=True)}; {_verdict(d)}"
            if d["excludes_zero"]:
                text += f": {c['a']} has {'lower' if d['value'] < 0 else 'higher'} error than {c['b']}"
            lines.append(text + ".")
        s = c["sim"]
        if s and s["diff"]:
            d, mc = s["diff"], s["mcnemar"]
            text = (f"- Closed-loop success, {name}: {c['a']} {fmt_est({'value': d['a']}, pct=True)} vs {c['b']} "
                    f"{fmt_est({'value': d['b']}, pct=True)} on {d['n_units']} paired episodes, difference "
                    f"{fmt_est(d, pct=True, diff=True)}; {_verdict(d)}")
            mc_text = f"McNemar, discordant pairs pooled over seeds: {mc['b']} vs {mc['c']}, p = {fmt(mc['p_value'])}"
            # With a handful of discordant pairs the percentile bootstrap is too narrow; the exact test decides.
            backed = mc["p_value"] < 0.05
            if d["excludes_zero"] and not backed:
                text += (f", but the exact test does not reject equal success ({mc_text}): too few discordant "
                         "pairs, no effect claimed.")
            else:
                if d["excludes_zero"]:
                    text += f": {c['a']} succeeds {'more' if d['value'] > 0 else 'less'} often than {c['b']}"
                text += f" ({mc_text})."
            lines.append(text)
    # Corruption: offline (per-episode squared error) and closed loop (per-episode success).
    for arm in study.arms["offline"]:
        uses = any((r.offline.get("corruption") or {}).get("uses_world_input") for r in study.arms["offline"][arm].values())
        moved, checked, small = [], 0, []
        for m in CORRUPTIONS:
            u = offline_pairs(study, arm, arm, num_a=lambda e, m=m: e["corrupted_se_sum"][m])
            if not u.seeds:
                continue
            d = study.paired(u)
            if d.get("too_small"):
                small.append(m)
                continue
            checked += 1
            if d["excludes_zero"]:
                moved.append(f"{m} {fmt_est(d, 4, diff=True)}")
        if small and not moved:
            lines.append(f"- Offline corruption, {arm} ({', '.join(small)}): {stats.TOO_SMALL} "
                         f"(fewer than {stats.MIN_UNITS} held-out episodes): no claim either way.")
        if not checked:
            continue
        if moved:
            lines.append(f"- Offline corruption, {arm}: corrupting the world input changes the action error "
                         f"({'; '.join(moved)}; corrupted − clean MSE, intervals exclude 0)"
                         + (": the policy uses its world input." if uses else
                            ": but this arm has no world input, so the corruption path itself is wrong."))
        else:
            lines.append(f"- Offline corruption, {arm}: no mode moves the action error beyond its interval"
                         + (": no evidence that the policy relies on its world input." if uses else
                            " (the control: no world input)."))
    for arm in study.arms["sim"]:
        for m in CORRUPTIONS:
            u, mseeds = sim_corruption_pairs(study, arm, m)
            if not u.seeds:
                continue
            d = study.paired(u)
            lines.append(f"- Closed-loop corruption ({m}), {arm}: corrupted − clean success {fmt_est(d, pct=True, diff=True)} "
                         f"on {d['n_units']} paired episodes (seeds {fmt_seeds(mseeds)}); {_verdict(d)}.")
    # World prediction on the pairs copying cannot fake.
    for arm in study.arms["offline"]:
        if arm == "A":
            continue
        top1 = arm_offline(study, arm, lambda e: _world_sum(e.get("world"), "top1_changed"),
                           lambda e: _world_sum(e.get("world"), "changed"))
        u = _Pairs()
        for s in study.seeds["offline"]:
            for k, e in sorted((offline_units(study.arms["offline"][arm][s].offline) or {}).items()):
                w = e.get("world")
                if w and _world_sum(w, "valid"):
                    u.add(s, e.get("task_index"), _world_sum(w, "top1"), _world_sum(w, "valid"), _world_sum(w, "copy"),
                          _world_sum(w, "valid"))
        if top1 is None or not u.seeds:
            continue
        d = study.paired(u)
        lines.append(f"- Offline world prediction, {arm}: top-1 − copy on all held-out pairs {fmt_est(d, 3, diff=True)} "
                     f"({_verdict(d)}); on the pairs where the token changes (copy = 0) top-1 is "
                     f"{fmt_est(top1, 3)}.")
    for arm in study.arms["sim"]:
        acc = arm_sim_world(study, arm, "changed_correct", "changed_count")
        u = _Pairs()
        for s in study.seeds["sim"]:
            r = study.arms["sim"][arm][s]
            units = sim_units(r.sim, r.name) or {}
            for key in sorted(units, key=stats.sort_key):
                w = units[key].get("world")
                if w and _world_sum(w, "count") and _world_sum(w, "copy_correct") is not None:
                    n = _world_sum(w, "count")
                    u.add(s, key[:2], _world_sum(w, "correct"), n, _world_sum(w, "copy_correct"), n)
        if not u.seeds:
            continue
        d = study.paired(u)
        text = (f"- Closed-loop world prediction, {arm}: accuracy − copy on all pairs {fmt_est(d, 3, diff=True)} "
                f"({_verdict(d)})")
        text += f"; on changed pairs (copy = 0) accuracy is {fmt_est(acc, 3)}." if acc else "."
        lines.append(text)
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
        _save_figure(fig, out_dir / "world_accuracy.png")
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
        _save_figure(fig, out_dir / "success_within_T.png")
        made.append("success_within_T.png")
    return made


def attempt_labels(commands: list[tuple[str, str]]) -> list[str]:
    """One label per commands.sh entry, so a reader can tell which attempt each command was.

    The matrix runs a stage again only when it did not finish, so an entry whose stage is listed again later
    was superseded: an evaluation is redone from its start (its results come from the last entry); a training
    listed again without ``--resume=true`` restarted from step 0 (it died before its first checkpoint).
    A training with ``--resume=true`` continued from the run's last checkpoint.
    """
    labels = []
    for i, (stage, cmd) in enumerate(commands):
        later = [c for s, c in commands[i + 1:] if s == stage]
        if stage == "train" and "--resume=true" in cmd:
            labels.append("train (resumed from its last checkpoint)")
        elif stage == "train" and later and "--resume=true" not in later[0]:
            labels.append("train (did not reach a checkpoint; restarted below)")
        elif stage != "train" and later:
            labels.append(f"{stage} (did not finish; redone below)")
        else:
            labels.append(stage)
    return labels


def provenance(runs: list[RunRecord]) -> list[str]:
    lines = ["## 8. Provenance", "", "Every number above comes from these runs and commands."
             + (" A run's commands come from its commands.sh (every command the matrix ran for it, in order; "
                "`$OUTPUT_DIR` = the matrix's output folder)." if any(r.commands is not None for r in runs) else ""), ""]
    for r in runs:
        lines.append(f"- **{r.name}** (`{r.label}`)")
        if r.commands is not None:  # every command the matrix ran for it, in order (its commands.sh)
            lines += [f"  - {label}: `{cmd}`" for label, (_, cmd) in zip(attempt_labels(r.commands), r.commands)]
            continue
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


def build_report(
    paths: list[Path],
    output: Path,
    title: str = "lerobot-world report",
    preamble: str = "",
    n_bootstrap: int = stats.N_BOOTSTRAP,
    bootstrap_seed: int = 0,
    calibration_from: Path | None = None,
) -> Path:
    """REPORT.md (+ REPORT.json and plots beside it) from run or matrix directories. ``calibration_from``: a
    matrix or run directory of separate calibration trainings (e.g. results/cpu_calibration for
    results/cpu_study) whose checkpoint evaluations join the calibration section only, as arms named
    "ARM (folder)", and nothing else."""
    if n_bootstrap < 1:
        raise ReportError(f"--n_bootstrap must be >= 1, got {n_bootstrap}.")
    runs = collect_runs(paths)
    study = Study(runs, n_bootstrap=n_bootstrap, rng_seed=bootstrap_seed)
    items = comparisons(study)
    points, calibration_runs, sources = calibration_points(runs), [], []
    if calibration_from is not None:
        calibration_runs = collect_runs([calibration_from])
        source = calibration_from.name
        for r in calibration_runs:
            r.label = f"{source}/{r.label}" if r.label.startswith("runs/") else r.label
        separate = calibration_points(calibration_runs)
        if not separate:
            raise ReportError(f"--calibration={calibration_from} holds no evaluations of earlier checkpoints "
                              "(<run>/eval_sim_step<N> or eval_offline_step<N>); expected a calibration matrix.")
        points.update({f"{arm} ({source})": steps for arm, steps in separate.items()})
        sources.append(source)
    calibration = calibration_estimates(study, points)
    output.parent.mkdir(parents=True, exist_ok=True)
    images = plots(runs, output.parent)
    calibration_image = calibration_plot(calibration, output.parent)
    if calibration_image:
        images.append(calibration_image)
    lines = [f"# {title}", ""]
    if preamble:
        lines += [preamble, ""]
    lines += [f"Intervals: {n_bootstrap} bootstrap resamples, seed {bootstrap_seed}; none below {stats.MIN_UNITS} "
              f"resampled units (\"{stats.TOO_SMALL}\").", ""]
    lines += config_section(runs) + seeds_section(study) + offline_section(study) + sim_section(study)
    lines += videos_section(runs, output.parent)
    lines += calibration_section(calibration, sources)
    lines += comparisons_section(items) + interpretation(study, items)
    if images:
        lines += ["## Plots", ""] + [f"![{name}]({name})" for name in images] + [""]
    lines += provenance(runs + calibration_runs)
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(output)
    json_path = output.with_suffix(".json")
    json_path.write_text(json.dumps({
        "statistics": {"n_bootstrap": n_bootstrap, "bootstrap_seed": bootstrap_seed, "min_units": stats.MIN_UNITS,
                       "seeds": study.seeds, "extra_seeds": [{"run": r.name, "results": k} for r, k in study.extra()]},
        "comparisons": items,
        "calibration": {arm: {str(n): {k: e[k] for k in ("sim", "offline", "sim_seeds", "offline_seeds")}
                              for n, e in steps.items()} for arm, steps in calibration.items()},
        "calibration_runs": [r.label for r in calibration_runs],
        "runs": [{"name": r.name, "path": r.label, "variant": r.variant, "seed": r.seed, "sweep": r.sweep,
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
    # Bootstrap resamples and their seed for every interval (fixed: the report is reproducible byte for byte).
    n_bootstrap: int = stats.N_BOOTSTRAP
    bootstrap_seed: int = 0
    # A matrix (or run) directory of separate calibration trainings, e.g. results/cpu_calibration for
    # results/cpu_study: its success-vs-steps points join the calibration section and nothing else.
    calibration: str | None = None


def main(argv: list[str] | None = None) -> None:
    out = run_command(_main, list(sys.argv[1:] if argv is None else argv))
    print(f"report written to {out} (+ {out.with_suffix('.json').name} and plots beside it)")


def _main(argv: list[str]) -> Path:
    positional = [a for a in argv if not a.startswith("--")]
    flags = [a for a in argv if a.startswith("--")]
    cfg = parse_config(ReportConfig, flags)
    paths = [Path(p) for p in cfg.runs + positional]
    if not paths:
        raise ReportError("give at least one run or matrix directory: lerobot-world report RUN... --output=REPORT.md")
    preamble = cfg.preamble
    if cfg.preamble_file:
        if not Path(cfg.preamble_file).is_file():
            raise ReportError(f"--preamble_file={cfg.preamble_file} does not exist.")
        preamble = Path(cfg.preamble_file).read_text().strip()
    calibration = Path(cfg.calibration) if cfg.calibration else None
    if calibration is not None and not calibration.is_dir():
        raise ReportError(f"--calibration={cfg.calibration} does not exist or is not a directory; expected a matrix "
                          "results folder such as results/cpu_calibration.")
    return build_report(paths, Path(cfg.output), cfg.title, preamble, cfg.n_bootstrap, cfg.bootstrap_seed, calibration)



if __name__ == "__main__":
    main()
