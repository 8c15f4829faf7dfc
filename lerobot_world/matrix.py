"""`lerobot-world matrix --config=configs/matrix/NAME.yaml [--dry_run]`: the study's runs, resumable.

Expands variants x seeds (+ extra seeds per variant, e.g. a second seed for C) + one-at-a-time sweeps
around the preset (future_offset, world_vocab_size, lambda_world, any world_vla field) into runs, then
for each run: train (real `lerobot-train`) -> optional eval-offline -> optional eval-sim.

Why it is built this way:
- One token table per (dataset, encoder, vocab), made once by `lerobot-world tokenize` and shared by
  every run that needs it (tokenize itself is idempotent on an identical table).
- Resumable at every level: a finished stage has a `.matrix_done` marker and is skipped; a training
  with a checkpoint short of its steps resumes through LeRobot's own
  `--config_path=.../train_config.json --resume=true`; a training that died before its first checkpoint
  is restarted from scratch (LeRobot refuses an existing output_dir otherwise).
- Order: seed 0 of every arm first (the headline comparison exists as early as possible), then the
  other seeds, then the sweeps.
- On CPU runs are sequential (DESIGN §6: two trainings on 2 cores are each ~10x slower); on one GPU,
  up to `max_parallel` trainings share it, each with a proportional share of dataloader workers.
- Every command is written to `reproduce.sh` and every run has a `state.json`.
- wandb: group = the matrix name (WANDB_RUN_GROUP, honoured by wandb.init since LeRobot's WandBLogger
  passes no group), run name = the run name (LeRobot passes `--job_name` as wandb's name).
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lerobot_world.presets import Preset, PresetError, format_value, load_preset, tokenize_args, train_args

VARIANTS = ("A", "B", "C", "C_no_world_input")
WORLD_VARIANTS = ("B", "C", "C_no_world_input")
DONE = ".matrix_done"
# Short names used in run names for common sweep keys.
SHORT = {
    "future_offset": "K", "world_vocab_size": "V", "lambda_world": "lw", "world_context": "ctx",
    "world_context_stride": "cs", "world_input_dropout": "wdrop",
}


class MatrixError(ValueError):
    """Bad matrix config or a run that cannot proceed; the message names the bad value."""


@dataclass
class DatasetSpec:
    repo_id: str = ""
    root: str | None = None


@dataclass
class SweepSpec:
    # A world_vla config field (future_offset, world_vocab_size, lambda_world, ...).
    key: str = ""
    # Values other than the preset's; each gives one extra run per (variant, first seed).
    values: list[float] = field(default_factory=list)
    # Arms the sweep applies to (A has no world tokens, so sweeping them there would repeat A).
    variants: list[str] = field(default_factory=lambda: list(WORLD_VARIANTS))


@dataclass
class WandbSpec:
    enable: bool = False
    mode: str = "offline"
    project: str | None = None
    # Default: the matrix name.
    group: str | None = None


@dataclass
class StageSpec:
    enable: bool = False
    # Full argv template (after `lerobot-world`); None uses the default for the stage. Placeholders:
    # {checkpoint} {stage_dir} {run_dir} {dataset_repo_id} {dataset_root} {eval_split} {table}
    # {variant} {seed} {name}.
    command: list[str] | None = None
    # Appended to the (default or given) command.
    extra_args: list[str] = field(default_factory=list)


# Every run is scored with the same evaluation seed (same held-out batch order, same LIBERO init
# states), so arms differ only by their checkpoints; the training seed is not passed on.
DEFAULT_STAGE_COMMANDS = {
    "eval_offline": [
        "eval-offline",
        "--policy.path={checkpoint}",
        "--dataset.repo_id={dataset_repo_id}",
        "--dataset.root={dataset_root}",
        "--output_dir={stage_dir}",
    ],
    "eval_sim": ["eval-sim", "--policy.path={checkpoint}", "--output_dir={stage_dir}"],
}


@dataclass
class MatrixConfig:
    # Matrix name: wandb group and default output folder name.
    name: str = ""
    output_dir: str | None = None
    # A preset name in configs/policy/ or a path to a preset JSON.
    preset: str = "cpu_small"
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    seeds: list[int] = field(default_factory=lambda: [0])
    # More seeds for some arms only, e.g. {"C": [1]}: the second seed for C.
    extra_seeds: dict[str, list[int]] = field(default_factory=dict)
    sweeps: list[SweepSpec] = field(default_factory=list)
    # Preset overrides with dotted keys: {"steps": 2000, "policy.dim_model": 128, "tokenize.vocab_size": 32}.
    overrides: dict[str, str] = field(default_factory=dict)
    wandb: WandbSpec = field(default_factory=WandbSpec)
    # Concurrent trainings; None: 1 on CPU, on a GPU as many as fit in `gpu_mem_gb_per_run`.
    max_parallel: int | None = None
    gpu_mem_gb_per_run: float = 16.0
    eval_offline: StageSpec = field(default_factory=StageSpec)
    eval_sim: StageSpec = field(default_factory=StageSpec)
    # Seconds between progress lines while trainings run.
    progress_every_s: float = 30.0


@dataclass
class CLIArgs:
    config: str | None = None
    dry_run: bool = False
    # Run only these run names (default: all).
    only: list[str] | None = None


@dataclass
class Run:
    name: str
    variant: str
    seed: int
    sweep_key: str | None
    sweep_value: object
    policy_overrides: dict
    vocab_size: int | None
    priority: int

    def dir(self, root: Path) -> Path:
        return root / "runs" / self.name


# ----------------------------------------------------------------------------------------------------
# Loading and expansion
# ----------------------------------------------------------------------------------------------------


def _parse_scalar(value):
    """Overrides come from YAML/CLI as strings; turn numbers/bools/null back into values."""
    if not isinstance(value, str):
        return value
    if value in ("True", "False", "None"):  # draccus hands YAML booleans over as Python reprs
        return {"True": True, "False": False, "None": None}[value]
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def load_config(path: str | Path, args: list[str] | None = None) -> MatrixConfig:
    import draccus

    path = Path(path)
    if not path.is_file():
        raise MatrixError(f"--config={path} does not exist; expected a matrix YAML/JSON file (see configs/matrix/).")
    kind = "json" if path.suffix == ".json" else "yaml"
    with draccus.config_type(kind):
        cfg = draccus.parse(MatrixConfig, config_path=str(path), args=args or [])
    cfg.overrides = {k: _parse_scalar(v) for k, v in cfg.overrides.items()}
    if not cfg.name:
        cfg.name = path.stem
    if cfg.output_dir is None:
        cfg.output_dir = str(Path("outputs") / "matrix" / cfg.name)
    validate(cfg)
    return cfg


def validate(cfg: MatrixConfig) -> None:
    from lerobot_world.configuration_world_vla import WorldVLAConfig

    if not cfg.dataset.repo_id:
        raise MatrixError("the matrix config needs dataset.repo_id (and dataset.root for a local dataset).")
    for v in list(cfg.variants) + list(cfg.extra_seeds):
        if v not in VARIANTS:
            raise MatrixError(f"unknown variant {v!r} in the matrix config; expected one of {list(VARIANTS)}.")
    if not cfg.seeds:
        raise MatrixError("the matrix config needs at least one seed in `seeds`.")
    fields = set(WorldVLAConfig.__dataclass_fields__)
    for sweep in cfg.sweeps:
        if sweep.key not in fields or sweep.key in ("variant", "world_tokens", "type"):
            raise MatrixError(f"sweep key {sweep.key!r} is not a sweepable world_vla config field.")
        for v in sweep.variants:
            if v not in VARIANTS:
                raise MatrixError(f"sweep {sweep.key!r} names unknown variant {v!r}; expected one of {list(VARIANTS)}.")
        if not sweep.values:
            raise MatrixError(f"sweep {sweep.key!r} has no values.")
    for key in cfg.overrides:
        if key.startswith("wandb.") or key in ("seed", "job_name", "output_dir", "policy.variant", "policy.world_tokens"):
            raise MatrixError(
                f"overrides.{key} is set by the matrix itself; use the matrix's `wandb:`, `seeds:` or `variants:` fields."
            )
    if cfg.max_parallel is not None and cfg.max_parallel < 1:
        raise MatrixError(f"max_parallel must be >= 1, got {cfg.max_parallel}.")
    if cfg.wandb.mode not in ("online", "offline", "disabled"):
        raise MatrixError(f"wandb.mode must be online, offline or disabled, got {cfg.wandb.mode!r}.")


def _fmt_value(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _clean(value):
    """Sweep values arrive as floats from YAML lists of numbers: keep ints as ints (draccus wants 8, not 8.0)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def expand_runs(cfg: MatrixConfig, preset: Preset) -> list[Run]:
    """All runs, in execution order: first seed of every arm, other seeds, then sweeps."""
    base_vocab = preset.policy.get("world_vocab_size") or preset.tokenize.get("vocab_size")
    runs: list[Run] = []
    seen: set[str] = set()

    def add(run: Run):
        if run.name not in seen:
            seen.add(run.name)
            runs.append(run)

    first = cfg.seeds[0]
    for seed in cfg.seeds:
        for v in cfg.variants:
            add(Run(f"{v}_s{seed}", v, seed, None, None, {}, base_vocab, 0 if seed == first else 1))
    for v, seeds in cfg.extra_seeds.items():
        for seed in seeds:
            add(Run(f"{v}_s{seed}", v, seed, None, None, {}, base_vocab, 0 if seed == first else 1))
    for sweep in cfg.sweeps:
        for value in sweep.values:
            value = _clean(value)
            for v in sweep.variants:
                label = f"{SHORT.get(sweep.key, sweep.key)}{_fmt_value(value)}"
                vocab = value if sweep.key == "world_vocab_size" else base_vocab
                add(Run(f"{v}_s{first}_{label}", v, first, sweep.key, value, {sweep.key: value}, vocab, 2))
    runs.sort(key=lambda r: r.priority)  # stable: keeps variant order within a priority
    return runs


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-")


@dataclass
class Plan:
    """Everything the runner will execute, computed without side effects (what --dry_run prints)."""

    cfg: MatrixConfig
    preset: Preset
    root: Path
    runs: list[Run]
    tables: dict[tuple, Path]
    parallel: int
    workers_per_run: int

    def eval_split(self) -> float:
        return float(self.preset.train.get("dataset.eval_split", 0.0))

    def encoder(self) -> str:
        return str(self.preset.tokenize.get("encoder", "pixel_pca"))

    def table_key(self, run: Run) -> tuple | None:
        if run.variant == "A":
            return None
        return (self.cfg.dataset.repo_id, self.encoder(), run.vocab_size)

    def table_for(self, run: Run) -> Path | None:
        key = self.table_key(run)
        return None if key is None else self.tables[key]

    def tokenize_command(self, key: tuple, out: Path) -> list[str]:
        repo_id, _, vocab = key
        args = ["lerobot-world", "tokenize", f"--dataset.repo_id={repo_id}"]
        if self.cfg.dataset.root:
            args.append(f"--dataset.root={self.cfg.dataset.root}")
        overrides = {"tokenize.vocab_size": vocab} if vocab is not None else {}
        tok = [a for a in tokenize_args(self.preset, overrides)]
        args += tok
        args += [f"--eval_split={self.eval_split()}", f"--output_dir={out}"]
        return args

    def train_env(self, run: Run) -> dict[str, str]:
        if not self.cfg.wandb.enable:
            return {}
        return {"WANDB_RUN_GROUP": self.cfg.wandb.group or self.cfg.name}

    def train_command(self, run: Run) -> list[str]:
        cfg = self.cfg
        overrides = {f"policy.{k}": v for k, v in run.policy_overrides.items()}
        overrides.update({
            "policy.variant": run.variant,
            "seed": run.seed,
            "job_name": run.name,
            "dataset.repo_id": cfg.dataset.repo_id,
            "num_workers": self.workers_per_run,
            "wandb.enable": cfg.wandb.enable,
            "wandb.mode": cfg.wandb.mode,
        })
        if cfg.dataset.root:
            overrides["dataset.root"] = cfg.dataset.root
        if cfg.wandb.project:
            overrides["wandb.project"] = cfg.wandb.project
        table = self.table_for(run)
        if table is not None:
            overrides["policy.world_tokens"] = str(table)
            overrides["policy.world_vocab_size"] = run.vocab_size
        args = ["lerobot-train", *train_args(self.preset, overrides)]
        args.append(f"--output_dir={run.dir(self.root) / 'train'}")
        return args

    def resume_command(self, run: Run) -> list[str]:
        cfg_path = run.dir(self.root) / "train" / "checkpoints" / "last" / "pretrained_model" / "train_config.json"
        # --steps: the matrix's budget wins over the saved one (a raised budget extends the run).
        steps = self.preset.train.get("steps")
        extra = [] if steps is None else [f"--steps={steps}"]
        return ["lerobot-train", f"--config_path={cfg_path}", "--resume=true", *extra]

    def stage_command(self, run: Run, stage: str) -> list[str] | None:
        spec: StageSpec = getattr(self.cfg, stage)
        if not spec.enable:
            return None
        run_dir = run.dir(self.root)
        table = self.table_for(run)
        values = {
            "checkpoint": str(run_dir / "train" / "checkpoints" / "last" / "pretrained_model"),
            "stage_dir": str(run_dir / stage),
            "run_dir": str(run_dir),
            "dataset_repo_id": self.cfg.dataset.repo_id,
            "dataset_root": self.cfg.dataset.root or "",
            "eval_split": self.eval_split(),
            "table": "" if table is None else str(table),
            "variant": run.variant,
            "seed": run.seed,
            "name": run.name,
        }
        template = spec.command if spec.command is not None else DEFAULT_STAGE_COMMANDS[stage]
        args = [a.format(**values) for a in template] + list(spec.extra_args)
        # Drop flags whose value came out empty (e.g. no dataset root for a Hub dataset).
        args = [a for a in args if not a.endswith("=")]
        return ["lerobot-world", *args]


def _auto_parallel(cfg: MatrixConfig, preset: Preset) -> int:
    device = str(preset.policy.get("device", "cpu"))
    if cfg.max_parallel is not None:
        return 1 if device == "cpu" else cfg.max_parallel
    if device == "cpu":
        return 1
    try:
        import torch

        if torch.cuda.is_available():
            free, _ = torch.cuda.mem_get_info()
            return max(1, int(free / 2**30 // cfg.gpu_mem_gb_per_run))
    except Exception:  # noqa: BLE001 - no usable GPU: sequential is always safe
        pass
    return 1


def make_plan(cfg: MatrixConfig) -> Plan:
    try:
        preset = load_preset(cfg.preset, cfg.overrides)
    except PresetError as e:
        raise MatrixError(str(e)) from e
    root = Path(cfg.output_dir).resolve()
    runs = expand_runs(cfg, preset)
    plan = Plan(cfg, preset, root, runs, {}, _auto_parallel(cfg, preset), 0)
    for run in runs:
        key = plan.table_key(run)
        if key is not None and key not in plan.tables:
            if key[2] is None:
                raise MatrixError(f"run {run.name}: no vocab size (set tokenize.vocab_size in the preset or overrides).")
            plan.tables[key] = root / "tables" / f"{_slug(key[0])}__{_slug(key[1])}__v{key[2]}"
    base_workers = int(preset.train.get("num_workers", 4))
    plan.workers_per_run = max(0 if base_workers == 0 else 1, base_workers // plan.parallel)
    return plan


# ----------------------------------------------------------------------------------------------------
# State on disk
# ----------------------------------------------------------------------------------------------------


def checkpoint_step(train_dir: Path) -> int | None:
    """The step of `checkpoints/last` (LeRobot's training_step.json), or None without a checkpoint."""
    step_file = train_dir / "checkpoints" / "last" / "training_state" / "training_step.json"
    if not step_file.is_file():
        return None
    try:
        return int(json.loads(step_file.read_text())["step"])
    except (OSError, ValueError, KeyError):
        return None


def train_status(plan: Plan, run: Run) -> str:
    """'done' | 'resume' | 'restart' (partial run without a checkpoint) | 'new'."""
    train_dir = run.dir(plan.root) / "train"
    steps = int(plan.preset.train.get("steps", 100_000))
    step = checkpoint_step(train_dir)
    if step is not None and step >= steps and (train_dir / "checkpoints" / "last" / "pretrained_model").is_dir():
        return "done"
    if step is not None:
        return "resume"
    return "restart" if train_dir.exists() else "new"


def write_state(plan: Plan, run: Run, **updates) -> dict:
    run_dir = run.dir(plan.root)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "state.json"
    state = json.loads(path.read_text()) if path.is_file() else {}
    state.update({
        "name": run.name,
        "variant": run.variant,
        "seed": run.seed,
        "sweep": None if run.sweep_key is None else {run.sweep_key: run.sweep_value},
        "matrix": plan.cfg.name,
        "table": None if plan.table_for(run) is None else str(plan.table_for(run)),
        "checkpoint_step": checkpoint_step(run_dir / "train"),
    })
    state.setdefault("stages", {})
    for key, value in updates.items():
        if key == "stage":
            name, info = value
            state["stages"].setdefault(name, {}).update(info)
        else:
            state[key] = value
    state["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(path)
    return state


def _shell(cmd: list[str], env: dict[str, str] | None = None) -> str:
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
    return (prefix + " " if prefix else "") + shlex.join(cmd)


def write_reproduce(plan: Plan) -> Path:
    """reproduce.sh: the exact command of every table and run, in execution order (fresh start)."""
    lines = [
        "#!/usr/bin/env bash",
        f"# Matrix {plan.cfg.name!r}: every command the runner executes, from scratch, in order.",
        f"# Preset: {plan.preset.path}; made by `lerobot-world matrix`. Interrupted trainings are resumed",
        "# with: lerobot-train --config_path=RUN/train/checkpoints/last/pretrained_model/train_config.json --resume=true",
        "set -euo pipefail",
        "export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}",
        "",
    ]
    for key, out in plan.tables.items():
        lines.append(_shell(plan.tokenize_command(key, out)))
    for run in plan.runs:
        lines += ["", f"# {run.name}", _shell(plan.train_command(run), plan.train_env(run))]
        for stage in ("eval_offline", "eval_sim"):
            cmd = plan.stage_command(run, stage)
            if cmd:
                lines.append(_shell(cmd))
    path = plan.root / "reproduce.sh"
    plan.root.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o755)
    return path


# ----------------------------------------------------------------------------------------------------
# Execution
# ----------------------------------------------------------------------------------------------------


def _exe(cmd: list[str]) -> list[str]:
    """Resolve console scripts next to this interpreter so the runner works without an activated venv."""
    local = Path(sys.executable).parent / cmd[0]
    return [str(local), *cmd[1:]] if local.exists() else cmd


class Runner:
    def __init__(self, plan: Plan):
        self.plan = plan
        self.lock = threading.Lock()
        self.active: dict[str, Path] = {}  # run name -> log file being written
        self.done = 0
        self.failed: list[str] = []

    def log(self, msg: str) -> None:
        with self.lock:
            print(f"[matrix {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    def _run(self, cmd: list[str], log_path: Path, env_extra: dict | None = None) -> int:
        env = os.environ.copy()
        env.update(env_extra or {})
        with open(log_path, "a") as log:
            log.write(f"\n$ {_shell(cmd, env_extra)}\n")
            log.flush()
            return subprocess.run(_exe(cmd), stdout=log, stderr=subprocess.STDOUT, env=env).returncode

    def tokenize_all(self) -> None:
        needed = {self.plan.table_key(r) for r in self.selected if self.plan.table_key(r) is not None}
        for key in needed:
            out = self.plan.tables[key]
            if (out / "meta.json").is_file():
                self.log(f"table {out.name}: exists, reused")
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            self.log(f"table {out.name}: tokenizing ({key[1]}, V={key[2]})")
            rc = self._run(self.plan.tokenize_command(key, out), out.parent / f"{out.name}.log")
            if rc != 0:
                raise MatrixError(f"tokenize for table {out} failed (exit {rc}); see {out.parent / (out.name + '.log')}.")

    def run_one(self, run: Run) -> None:
        plan = self.plan
        run_dir = run.dir(plan.root)
        run_dir.mkdir(parents=True, exist_ok=True)
        status = train_status(plan, run)
        if status == "done":
            self.log(f"{run.name}: train done (step {checkpoint_step(run_dir / 'train')}), skipped")
        else:
            if status == "restart":
                # Died before its first checkpoint: nothing to resume; LeRobot needs a fresh output_dir.
                shutil.rmtree(run_dir / "train")
            cmd = plan.resume_command(run) if status == "resume" else plan.train_command(run)
            what = f"resuming from step {checkpoint_step(run_dir / 'train')}" if status == "resume" else "training"
            self.log(f"{run.name}: {what}; log {run_dir / 'train.log'}")
            write_state(plan, run, status="training", stage=("train", {"command": _shell(cmd, plan.train_env(run))}))
            with self.lock:
                self.active[run.name] = run_dir / "train.log"
            start = time.time()
            rc = self._run(cmd, run_dir / "train.log", plan.train_env(run))
            with self.lock:
                self.active.pop(run.name, None)
            if rc != 0 or train_status(plan, run) != "done":
                write_state(plan, run, status="failed", stage=("train", {"returncode": rc}))
                raise MatrixError(f"run {run.name}: lerobot-train exited {rc}; see {run_dir / 'train.log'}.")
            write_state(plan, run, stage=("train", {"returncode": 0, "seconds": round(time.time() - start, 1)}))
            self.log(f"{run.name}: trained in {time.time() - start:.0f} s")
        for stage in ("eval_offline", "eval_sim"):
            cmd = plan.stage_command(run, stage)
            if cmd is None:
                continue
            stage_dir = run_dir / stage
            if (stage_dir / DONE).is_file():
                self.log(f"{run.name}: {stage} done, skipped")
                continue
            if stage_dir.exists():
                shutil.rmtree(stage_dir)  # a partial stage must never look complete
            self.log(f"{run.name}: {stage}")
            write_state(plan, run, status=stage, stage=(stage, {"command": _shell(cmd)}))
            start = time.time()
            rc = self._run(cmd, run_dir / f"{stage}.log")
            if rc != 0:
                write_state(plan, run, status="failed", stage=(stage, {"returncode": rc}))
                raise MatrixError(f"run {run.name}: {stage} exited {rc}; see {run_dir / (stage + '.log')}.")
            stage_dir.mkdir(parents=True, exist_ok=True)
            (stage_dir / DONE).write_text(json.dumps({"seconds": round(time.time() - start, 1)}))
            write_state(plan, run, stage=(stage, {"returncode": 0, "seconds": round(time.time() - start, 1)}))
        write_state(plan, run, status="done")

    def _progress(self, stop: threading.Event, total: int) -> None:
        while not stop.wait(self.plan.cfg.progress_every_s):
            with self.lock:
                active = dict(self.active)
                done = self.done
            parts = [f"{name} {_last_step(path)}" for name, path in active.items()]
            self.log(f"{done}/{total} runs done; running: {', '.join(parts) or '-'}")

    def run(self, selected: list[Run]) -> int:
        self.selected = selected
        self.tokenize_all()
        stop = threading.Event()
        monitor = threading.Thread(target=self._progress, args=(stop, len(selected)), daemon=True)
        monitor.start()

        def work(run: Run):
            try:
                self.run_one(run)
            except Exception as e:  # noqa: BLE001 - report, keep the other runs going
                self.log(f"FAILED {e}")
                with self.lock:
                    self.failed.append(run.name)
            finally:
                with self.lock:
                    self.done += 1

        try:
            with ThreadPoolExecutor(max_workers=self.plan.parallel) as pool:
                list(pool.map(work, selected))
        finally:
            stop.set()
        return len(self.failed)


def _last_step(log_path: Path) -> str:
    """The last `step:N` LeRobot logged, for progress lines."""
    try:
        with open(log_path, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 20000))
            tail = f.read().decode(errors="replace")
    except OSError:
        return "(starting)"
    import re

    steps = re.findall(r"step:(\S+)", tail)
    return f"step {steps[-1]}" if steps else "(starting)"


class _MatrixLock:
    """One runner per matrix folder: two would train the same run into the same directory."""

    def __init__(self, root: Path):
        self.path = root / ".matrix.lock"

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            try:
                pid = int(self.path.read_text().strip())
                os.kill(pid, 0)
                raise MatrixError(f"matrix {self.path.parent} is already being run by process {pid}.")
            except (ValueError, ProcessLookupError):
                pass  # stale lock from a killed runner
        self.path.write_text(str(os.getpid()))
        return self

    def __exit__(self, *exc):
        self.path.unlink(missing_ok=True)


def describe(plan: Plan) -> str:
    lines = [
        f"matrix {plan.cfg.name!r}: {len(plan.runs)} runs, preset {plan.preset.name}, output {plan.root}",
        f"parallel trainings: {plan.parallel} (num_workers {plan.workers_per_run} each)",
    ]
    for key, out in plan.tables.items():
        lines.append(f"  table {out.name}: {_shell(plan.tokenize_command(key, out))}")
    for run in plan.runs:
        status = train_status(plan, run)
        lines.append(f"  [{status:>7}] {run.name}")
    return "\n".join(lines)


USAGE = """usage: lerobot-world matrix --config=configs/matrix/NAME.yaml [--dry_run] [--only=RUN,RUN] [--KEY=VALUE ...]
Any other --KEY=VALUE overrides the matrix file (e.g. --output_dir=..., --wandb.mode=offline).
Matrix file fields:"""


def _parse_cli(argv: list[str]) -> tuple[CLIArgs, list[str]]:
    """--config/--dry_run/--only are the runner's; everything else overrides the matrix file."""
    cli, rest = CLIArgs(), []
    for arg in argv:
        key, _, value = arg.partition("=")
        if key == "--config":
            cli.config = value
        elif key == "--dry_run":
            if value.lower() not in ("", "true", "false", "1", "0"):
                raise SystemExit(f"error: --dry_run={value!r} is not a boolean (true/false).")
            cli.dry_run = value.lower() in ("", "true", "1")
        elif key == "--only":
            cli.only = [v for v in value.split(",") if v]
        else:
            rest.append(arg)
    return cli, rest


def main(argv: list[str] | None = None) -> None:
    import draccus

    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        draccus.parse(MatrixConfig, args=["--help"])
        return
    cli, rest = _parse_cli(argv)
    if not cli.config:
        sys.exit("error: pass --config=configs/matrix/NAME.yaml (a matrix file; see configs/matrix/).")
    try:
        plan = make_plan(load_config(cli.config, rest))
        selected = plan.runs
        if cli.only:
            names = {r.name for r in plan.runs}
            bad = [n for n in cli.only if n not in names]
            if bad:
                raise MatrixError(f"--only names unknown run(s) {bad}; the matrix has {sorted(names)}.")
            selected = [r for r in plan.runs if r.name in cli.only]
        print(describe(plan), flush=True)
        if cli.dry_run:
            plan.root.mkdir(parents=True, exist_ok=True)
            print(f"dry run: commands written to {write_reproduce(plan)}; nothing executed.")
            return
        with _MatrixLock(plan.root):
            reproduce = write_reproduce(plan)
            (plan.root / "matrix.json").write_text(
                json.dumps({"config": asdict(plan.cfg), "preset": str(plan.preset.path),
                            "runs": [r.name for r in plan.runs]}, indent=2, default=str)
            )
            print(f"commands: {reproduce}", flush=True)
            n_failed = Runner(plan).run(selected)
    except (MatrixError, PresetError) as e:
        sys.exit(f"error: {e}")
    if n_failed:
        sys.exit(f"error: {n_failed} run(s) failed; re-run the same command to resume.")
    print(f"matrix {plan.cfg.name!r}: all {len(selected)} runs done in {plan.root / 'runs'}")


__all__ = ["MatrixConfig", "Plan", "Run", "expand_runs", "load_config", "main", "make_plan", "format_value"]
