"""`lerobot-world matrix --config=configs/matrix/NAME.yaml [--dry_run]`: the study's runs, resumable.

Expands variants x seeds (+ extra seeds per variant, e.g. a second seed for C) + one-at-a-time sweeps
around the preset (future_offset, world_vocab_size, lambda_world, any world_vla field) into runs, then
for each run: train (real `lerobot-train`) -> optional eval-offline -> optional eval-sim -> optional
closed-loop corruption (`eval_sim_corruption`: eval-sim --corruption=MODE with exactly eval_sim's
episodes, into `<run>/eval_sim_<mode>/`) -> optional evaluations of earlier checkpoints (a stage's
`checkpoints: [N, ...]`: `checkpoints/<N>/pretrained_model` into `<run>/<stage>_step<N>/`; the cpu preset has
a constant learning rate, so checkpoint N of a longer run is a run of budget N).

Why it is built this way:
- One token table per (dataset, encoder, vocab), made once by `lerobot-world tokenize` and shared by
  every run that needs it (tokenize itself is idempotent on an identical table).
- Resumable at every level: a finished stage has a `.matrix_done` marker and is skipped; a training
  with a checkpoint short of its steps resumes through LeRobot's own
  `--config_path=.../train_config.json --resume=true`, after the earlier checkpoints it already saved are
  evaluated; a training also stops at every earlier checkpoint a stage scores, runs those stages, and resumes
  (Plan.segment_ends), so a study spanning work sessions grows its success-vs-budget curve as it goes; a training
  that died before its first checkpoint is restarted from scratch (LeRobot refuses an existing output_dir).
- Order: seed 0 of every arm first (the headline comparison exists as early as possible), then the
  other seeds, then the sweeps.
- On CPU runs are sequential (DESIGN §6: two trainings on 2 cores are each ~10x slower); on one GPU,
  up to `max_parallel` trainings share it, each with a proportional share of dataloader workers.
- Every command is written to `reproduce.sh`, every run has a `state.json` and a `commands.sh` (the
  commands it executed, in order).
- A study outlives the cache (`results_dir`, lerobot_world.study.results): a run whose every stage
  finished is exported to `results_dir/runs/<name>/` (small files only, marker written last) and is done
  from then on, even with an empty cache; `results_dir/dataset.json` pins the dataset's fingerprint.
- Paths: `~` is expanded; relative paths are relative to the current directory (run from the repo root).
- wandb: group = the matrix name (WANDB_RUN_GROUP, honoured by wandb.init since LeRobot's WandBLogger
  passes no group), run name = the run name (LeRobot passes `--job_name` as wandb's name).
"""

import contextlib
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
from typing import NamedTuple

from lerobot_world.errors import UserError, fail, first_line
from lerobot_world.outputs import write_text_atomic
from lerobot_world.study import results as study_results
from lerobot_world.study.presets import (
    PRESET_DIR,
    Preset,
    PresetError,
    load_preset,
    tokenize_args,
    train_args,
)
from lerobot_world.study.results import StudyResultsError
from lerobot_world.vocabulary import CORRUPTIONS, VARIANTS, WORLD_VARIANTS

DONE = ".matrix_done"
# Flags that fix which closed-loop episodes run; a corruption stage takes them from eval_sim only, so its
# episodes pair with the clean ones (same suite, tasks, init states, env seeds, step limit).
EPISODE_FLAGS = ("--env.", "--n_episodes_per_task", "--init_state_start", "--seed", "--max_steps", "--corruption",
                 "--policy.", "--output_dir", "--allow_training_init_states")
# Training flags that do not change what a run learns (machine layout, logging): left out when an exported
# run is compared with the current plan.
NEUTRAL_TRAIN_FLAGS = ("--num_workers=", "--wandb.", "--output_dir=")
# Short names used in run names for common sweep keys.
SHORT = {
    "future_offset": "K", "world_vocab_size": "V", "lambda_world": "lw", "world_context": "ctx",
    "world_context_stride": "cs", "world_input_dropout": "wdrop",
}


class MatrixError(UserError):
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
    # Training steps whose checkpoints (LeRobot saves checkpoints/<step>/pretrained_model every save_freq
    # steps and at the end) are evaluated too, each into <run>/<stage>_step<N>/ with the same command; the
    # final step is the stage's own checkpoint (evaluated once, into <run>/<stage>/).
    checkpoints: list[int] = field(default_factory=list)


@dataclass
class CorruptionStageSpec:
    # Closed-loop world corruption: `eval-sim --corruption=MODE` on the final checkpoint with exactly
    # eval_sim's command and extra_args (same episodes), into <run>/eval_sim_<mode>/; needs eval_sim.
    enable: bool = False
    modes: list[str] = field(default_factory=lambda: list(CORRUPTIONS))
    variants: list[str] = field(default_factory=lambda: ["C"])
    # Appended after eval_sim's flags; only flags that do not change the episodes (e.g. --max_videos_per_task).
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
    # The cache of token tables, checkpoints and stage outputs (default outputs/matrix/<name>).
    output_dir: str | None = None
    # Where the small files that must last go (results/<study>/, in git): finished runs, dataset.json,
    # matrix.json, reproduce.sh. A run exported there is done, even when output_dir is empty. None: no export.
    results_dir: str | None = None
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
    eval_sim_corruption: CorruptionStageSpec = field(default_factory=CorruptionStageSpec)
    # Seconds between progress lines while trainings run.
    progress_every_s: float = 30.0


@dataclass
class CLIArgs:
    config: str | None = None
    dry_run: bool = False
    # Run only these run names (default: all).
    only: list[str] | None = None
    # Train a use_amp matrix on a CPU without bf16 kernels anyway (refused by default: see _refuse_slow_bf16).
    allow_slow_bf16: bool = False


class Stage(NamedTuple):
    """One evaluation of a run: its folder under the run directory, its command, the checkpoint it reads."""

    name: str
    command: list[str]
    checkpoint: Path


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
    from draccus.utils import DraccusException

    try:
        with draccus.config_type(kind):
            cfg = draccus.parse(MatrixConfig, config_path=str(path), args=args or [])
    except DraccusException as e:
        first = first_line(e)
        raise MatrixError(f"--config={path}: {first}") from None
    cfg.overrides = {k: _parse_scalar(v) for k, v in cfg.overrides.items()}
    if cfg.dataset.root:  # commands get no shell: expand ~ here; a relative root stays relative to the cwd
        cfg.dataset.root = os.path.expanduser(cfg.dataset.root)
    if not cfg.name:
        cfg.name = path.stem
    if cfg.output_dir is None:
        cfg.output_dir = str(Path("outputs") / "matrix" / cfg.name)
    validate(cfg)
    return cfg


def validate(cfg: MatrixConfig) -> None:
    from lerobot_world.policy.configuration_world_vla import WorldVLAConfig

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
    for stage in ("eval_offline", "eval_sim"):
        for n in getattr(cfg, stage).checkpoints:
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise MatrixError(f"{stage}.checkpoints contains {n!r}; expected positive training steps.")
    corr = cfg.eval_sim_corruption
    if corr.enable:
        if not cfg.eval_sim.enable:
            raise MatrixError("eval_sim_corruption.enable is true but eval_sim is not enabled; the corrupted "
                              "episodes are paired with eval_sim's clean ones, so enable eval_sim too.")
        for m in corr.modes:
            if m not in CORRUPTIONS:
                raise MatrixError(f"eval_sim_corruption.modes contains {m!r}; expected some of {list(CORRUPTIONS)}.")
        if not corr.modes:
            raise MatrixError("eval_sim_corruption.modes is empty; expected some of ['random', 'shuffle', 'mask'].")
        for v in corr.variants:
            if v not in VARIANTS:
                raise MatrixError(f"eval_sim_corruption.variants names unknown variant {v!r}; expected some of {list(VARIANTS)}.")
        for a in corr.extra_args:
            if a.startswith(EPISODE_FLAGS):
                raise MatrixError(
                    f"eval_sim_corruption.extra_args sets {a!r}, which would make the corrupted episodes differ from "
                    "eval_sim's clean ones; expected only flags such as --max_videos_per_task (the episodes come "
                    "from eval_sim.extra_args)."
                )
        for a in cfg.eval_sim.extra_args:
            if a.startswith("--corruption"):
                raise MatrixError(f"eval_sim.extra_args sets {a!r}; eval_sim is the clean evaluation (use "
                                  "eval_sim_corruption for corrupted runs).")


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
    # Where finished runs are exported (None: no export).
    results_dir: Path | None = None

    def steps(self) -> int:
        return int(self.preset.train.get("steps", 100_000))

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

    def train_command(self, run: Run, steps: int | None = None) -> list[str]:
        """The run's fresh `lerobot-train` command; ``steps`` (a segment end) stops it early."""
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
        if steps is not None:
            overrides["steps"] = steps
        args = ["lerobot-train", *train_args(self.preset, overrides)]
        args.append(f"--output_dir={run.dir(self.root) / 'train'}")
        return args

    def resume_command(self, run: Run, steps: int | None = None) -> list[str]:
        """Resume from `checkpoints/last` up to ``steps`` (a segment end; default the budget)."""
        cfg_path = run.dir(self.root) / "train" / "checkpoints" / "last" / "pretrained_model" / "train_config.json"
        # --steps: the matrix's budget (or segment end) wins over the saved one (a raised budget extends the run).
        steps = self.preset.train.get("steps") if steps is None else steps
        extra = [] if steps is None else [f"--steps={steps}"]
        return ["lerobot-train", f"--config_path={cfg_path}", "--resume=true", *extra]

    def segment_ends(self) -> list[int]:
        """Where a training stops and is resumed: every earlier checkpoint a stage scores, then the budget.

        So each checkpoint is scored as soon as it exists (a calibration shows its success-vs-budget curve
        as it goes, and can be stopped once the budget is known). LeRobot's resume is sample-exact (the data
        order continues at the saved epoch/offset, optimizer and RNG states are restored) and world_vla's
        learning rate is constant, so a segmented training trains what one uninterrupted training would.
        """
        steps = self.steps()
        marks = {n for stage in ("eval_offline", "eval_sim") if getattr(self.cfg, stage).enable
                 for n in getattr(self.cfg, stage).checkpoints if 0 < n < steps}
        return sorted(marks) + [steps]

    def next_segment_end(self, saved: int | None) -> int:
        return next(n for n in self.segment_ends() if n > (saved or 0))

    def segment_command(self, run: Run, end: int, resume: bool) -> list[str]:
        """The command that trains (or resumes) ``run`` up to the segment end ``end``; the last segment is the
        full-budget command itself."""
        steps = None if end == self.steps() else end
        return self.resume_command(run, steps) if resume else self.train_command(run, steps)

    def train_commands(self, run: Run) -> list[tuple[int, list[str]]]:
        """From scratch: (segment end, command) of each training segment, in order."""
        return [(n, self.segment_command(run, n, resume=i > 0)) for i, n in enumerate(self.segment_ends())]

    def checkpoint_dir(self, run: Run, step: int | None = None) -> Path:
        """`checkpoints/last/pretrained_model`, or the one LeRobot saved at training step ``step``."""
        from lerobot.common.train_utils import get_step_identifier

        name = "last" if step is None else get_step_identifier(step, self.steps())
        return run.dir(self.root) / "train" / "checkpoints" / name / "pretrained_model"

    def _render(self, run: Run, spec: StageSpec, default: str, stage_dir: str, checkpoint: Path, extra=()) -> list[str]:
        run_dir = run.dir(self.root)
        table = self.table_for(run)
        values = {
            "checkpoint": str(checkpoint),
            "stage_dir": str(run_dir / stage_dir),
            "run_dir": str(run_dir),
            "dataset_repo_id": self.cfg.dataset.repo_id,
            "dataset_root": self.cfg.dataset.root or "",
            "eval_split": self.eval_split(),
            "table": "" if table is None else str(table),
            "variant": run.variant,
            "seed": run.seed,
            "name": run.name,
        }
        template = spec.command if spec.command is not None else DEFAULT_STAGE_COMMANDS[default]
        args = [a.format(**values) for a in template] + list(spec.extra_args) + list(extra)
        # Drop flags whose value came out empty (e.g. no dataset root for a Hub dataset).
        args = [a for a in args if not a.endswith("=")]
        return ["lerobot-world", *args]

    def stages(self, run: Run) -> list[Stage]:
        """Every enabled evaluation of ``run`` (folder, command, checkpoint), in execution order: eval_offline,
        eval_sim, closed-loop corruption, then the earlier checkpoints (`<stage>_step<N>`)."""
        out = []
        steps = self.steps()
        for stage in ("eval_offline", "eval_sim"):
            spec: StageSpec = getattr(self.cfg, stage)
            if not spec.enable:
                continue
            last = self.checkpoint_dir(run)
            out.append(Stage(stage, self._render(run, spec, stage, stage, last), last))
            if stage == "eval_sim" and self.cfg.eval_sim_corruption.enable and run.variant in self.cfg.eval_sim_corruption.variants:
                corr = self.cfg.eval_sim_corruption
                for mode in corr.modes:
                    name = f"eval_sim_{mode}"
                    extra = [f"--corruption={mode}", *corr.extra_args]
                    out.append(Stage(name, self._render(run, spec, stage, name, last, extra=extra), last))
        for stage in ("eval_offline", "eval_sim"):
            spec = getattr(self.cfg, stage)
            if not spec.enable:
                continue
            for n in sorted(set(spec.checkpoints)):
                if n != steps:  # the final step is the stage's own checkpoint
                    name, ckpt = f"{stage}_step{n}", self.checkpoint_dir(run, n)
                    out.append(Stage(name, self._render(run, spec, stage, name, ckpt), ckpt))
        return out

    def run_spec(self, run: Run) -> dict:
        """What an exported run must match to count as this plan's run: its training command and every stage
        command, machine-independent (cache as $OUTPUT_DIR, home as ~, layout/logging flags left out)."""
        def norm(cmd: list[str]) -> list[str]:
            return [study_results.portable(a, self.root, home=True) for a in cmd]

        train = [a for a in norm(self.train_command(run)) if not a.startswith(NEUTRAL_TRAIN_FLAGS)]
        return {"train": train, "stages": {st.name: norm(st.command) for st in self.stages(run)}}

    def exported(self, runs: list[Run] | None = None) -> dict[str, dict]:
        """Run name -> completion marker of the runs already exported to results_dir (checked: files intact,
        made under this plan). An exported run made under another plan is refused, never redone silently."""
        if self.results_dir is None:
            return {}
        out = {}
        for run in self.runs if runs is None else runs:
            try:
                marker = study_results.load_marker(self.results_dir, run.name)
            except StudyResultsError as e:
                raise MatrixError(str(e)) from None
            if marker is None:
                continue
            why = study_results.plan_difference(marker, self.run_spec(run))
            if why:
                folder = study_results.run_results_dir(self.results_dir, run.name)
                raise MatrixError(
                    f"run {run.name} was exported to {folder} under another plan ({why}); restore the matrix "
                    f"config it was made with, or delete {folder} (git rm -r) to redo the run."
                )
            out[run.name] = marker
        return out

    def check_checkpoints(self) -> None:
        """Every `checkpoints` step must be one lerobot-train saves (a multiple of save_freq, or the final step)."""
        from lerobot.configs.train import TrainPipelineConfig

        steps = self.steps()
        save_freq = int(self.preset.train.get("save_freq", TrainPipelineConfig.__dataclass_fields__["save_freq"].default))
        for stage in ("eval_offline", "eval_sim"):
            for n in getattr(self.cfg, stage).checkpoints:
                if n > steps or (n != steps and (save_freq <= 0 or n % save_freq)):
                    raise MatrixError(
                        f"{stage}.checkpoints contains {n}, a step lerobot-train does not save with steps={steps} "
                        f"and save_freq={save_freq}; expected multiples of save_freq up to steps, or steps itself."
                    )


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
    root = Path(cfg.output_dir).expanduser().resolve()
    runs = expand_runs(cfg, preset)
    results = Path(cfg.results_dir).expanduser().resolve() if cfg.results_dir else None
    plan = Plan(cfg, preset, root, runs, {}, _auto_parallel(cfg, preset), 0, results)
    plan.check_checkpoints()
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


def interrupted_attempt_seconds(train_dir: Path, attempt: dict, ended_at: float) -> tuple[float, float]:
    """(useful, lost) wall seconds of a training attempt that did not finish its segment (killed with the work
    session, or crashed): useful up to the last checkpoint it saved (LeRobot writes training_step.json last),
    lost after it, since the next attempt resumes from that checkpoint and redoes those steps."""
    started = float(attempt["started"])
    ended_at = max(ended_at, started)
    saved = checkpoint_step(train_dir)
    step_file = train_dir / "checkpoints" / "last" / "training_state" / "training_step.json"
    if saved is not None and saved > (attempt.get("from_step") or 0) and step_file.is_file():
        useful = min(max(step_file.stat().st_mtime - started, 0.0), ended_at - started)
    else:
        useful = 0.0
    return round(useful, 1), round(ended_at - started - useful, 1)


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
            entry = state["stages"].setdefault(name, {})
            if "seconds" in info:  # every attempt's time (a resumed training adds up)
                info = {**info, "seconds_total": round(entry.get("seconds_total", 0.0) + info["seconds"], 1)}
            if "lost_seconds" in info:  # an interrupted attempt's time after its last checkpoint (redone)
                info = {**info, "lost_seconds_total": round(entry.get("lost_seconds_total", 0.0) + info["lost_seconds"], 1)}
            entry.update(info)
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


def _line(plan: Plan, cmd: list[str], env: dict | None = None) -> str:
    """A command as written to reproduce.sh / commands.sh / matrix.json: the cache folder as $OUTPUT_DIR."""
    return study_results.shell_line(cmd, env, plan.root)


def _preset_label(plan: Plan) -> str:
    path = Path(plan.preset.path).resolve() if plan.preset.path else None
    repo = PRESET_DIR.parent.parent
    if path is None:
        return plan.preset.name
    return path.relative_to(repo).as_posix() if path.is_relative_to(repo) else str(path)


def reproduce_text(plan: Plan) -> str:
    """reproduce.sh: the exact command of every table and run, in execution order (fresh start)."""
    lines = [
        "#!/usr/bin/env bash",
        f"# Matrix {plan.cfg.name!r}: every command the runner executes, from scratch, in order.",
        f"# Preset: {_preset_label(plan)}; made by `lerobot-world matrix`. Run from the repository root. Interrupted",
        "# trainings are resumed with: lerobot-train --config_path=RUN/train/checkpoints/last/pretrained_model/"
        "train_config.json --resume=true",
        "set -euo pipefail",
        "export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}",
        f"OUTPUT_DIR=${{OUTPUT_DIR:-{study_results.output_dir_word(plan.cfg.output_dir)}}}",
        "",
    ]
    for key, out in plan.tables.items():
        lines.append(_line(plan, plan.tokenize_command(key, out)))
    for run in plan.runs:
        lines += ["", f"# {run.name}"]
        stages = plan.stages(run)
        for end, cmd in plan.train_commands(run):
            lines.append(_line(plan, cmd, plan.train_env(run)))
            if end != plan.steps():  # a segment end: its checkpoint's stages run before the training resumes
                lines += [_line(plan, st.command) for st in stages if st.checkpoint == plan.checkpoint_dir(run, end)]
        lines += [_line(plan, st.command) for st in stages if not st.checkpoint.parent.name.isdigit()]
    return "\n".join(lines) + "\n"


def write_reproduce(plan: Plan, folder: Path | None = None) -> Path:
    folder = plan.root if folder is None else folder
    path = folder / "reproduce.sh"
    write_text_atomic(path, reproduce_text(plan))
    path.chmod(0o755)
    return path


def plan_record(plan: Plan) -> dict:
    """matrix.json: the config as given, the preset's content and every run's commands (the expanded plan)."""
    p = plan.preset
    return {
        "name": plan.cfg.name,
        "config": asdict(plan.cfg),
        "preset": {"name": p.name, "path": _preset_label(plan), "policy": p.policy, "train": p.train,
                   "tokenize": p.tokenize},
        "output_dir": "$OUTPUT_DIR (the cache; config.output_dir)",
        "tables": {out.name: _line(plan, plan.tokenize_command(key, out)) for key, out in plan.tables.items()},
        "runs": [
            {"name": r.name, "variant": r.variant, "seed": r.seed,
             "sweep": None if r.sweep_key is None else {r.sweep_key: r.sweep_value},
             "train": _line(plan, plan.train_command(r), plan.train_env(r)),
             "stages": {st.name: _line(plan, st.command) for st in plan.stages(r)}}
            for r in plan.runs
        ],
    }


def write_plan_files(plan: Plan, folder: Path) -> None:
    write_reproduce(plan, folder)
    write_text_atomic(folder / "matrix.json", json.dumps(plan_record(plan), indent=2, default=str) + "\n")


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
        self.active: dict[str, tuple[str, float, Path]] = {}  # run name -> (stage, its start time, its log)
        self.done = 0
        self.failed: list[str] = []
        self.exported: dict[str, dict] = {}  # runs already in results_dir: done, never re-run

    def _header(self, run: Run) -> str:
        return study_results.commands_header(run.name, self.plan.cfg.name, self.plan.cfg.output_dir)

    def _record(self, run: Run, stage: str, cmd: list[str], env: dict | None = None) -> None:
        """Add a command to the run's commands.sh before it executes (every command, in order)."""
        line = study_results.shell_line(cmd, env, self.plan.root)
        study_results.append_command(run.dir(self.plan.root), stage, line, self._header(run))

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
        needed = {self.plan.table_key(r) for r in self.selected
                  if self.plan.table_key(r) is not None and r.name not in self.exported}
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
        if run.name in self.exported:
            self.log(f"{run.name}: exported in {study_results.run_results_dir(plan.results_dir, run.name)}, skipped")
            return
        run_dir = run.dir(plan.root)
        run_dir.mkdir(parents=True, exist_ok=True)
        table_key = plan.table_key(run)
        if table_key is not None and not (run_dir / study_results.COMMANDS_FILE).is_file():
            # The shared table this run reads (made once; tokenize is idempotent on an identical table).
            self._record(run, "table", plan.tokenize_command(table_key, plan.tables[table_key]))
        self._account_interrupted_training(run)
        status = train_status(plan, run)
        if status == "done":
            self.log(f"{run.name}: train done (step {checkpoint_step(run_dir / 'train')}), skipped")
        if status == "restart":
            # Died before its first checkpoint: nothing to resume; LeRobot needs a fresh output_dir.
            shutil.rmtree(run_dir / "train")
        while status != "done":
            # Earlier checkpoints this training already saved are scored before it continues (after a kill, or
            # at a segment end), so a study that spans work sessions learns its success-vs-budget curve as it goes.
            self._score_saved_checkpoints(run)
            self._train_segment(run, resume=status == "resume")
            status = train_status(plan, run)
        stages = plan.stages(run)
        for stage, cmd, ckpt in stages:
            self._run_stage(run, stage, cmd, ckpt)
        write_state(plan, run, status="done")
        if plan.results_dir is not None:
            try:
                dest = study_results.export_run(run_dir, plan.results_dir, run.name, [st.name for st in stages], DONE,
                                                plan.run_spec(run), plan.root)
            except StudyResultsError as e:
                raise MatrixError(str(e)) from None
            self.log(f"{run.name}: exported to {dest}")

    def _score_saved_checkpoints(self, run: Run) -> None:
        """The stages of the earlier checkpoints the training has saved; one is complete once `last` has reached
        its step (LeRobot moves `last` after the save), so a half-saved one is left for later."""
        saved = checkpoint_step(run.dir(self.plan.root) / "train")
        if saved is None:
            return
        for stage, cmd, ckpt in self.plan.stages(run):
            step = ckpt.parent.name
            if step.isdigit() and int(step) <= saved and (ckpt / "config.json").is_file():
                self._run_stage(run, stage, cmd, ckpt)

    def _account_interrupted_training(self, run: Run) -> None:
        """A training attempt that a killed runner never finished (the state still holds its `attempt`) adds its
        time up to its last checkpoint to the stage's seconds, and the rest to lost_seconds; its end is the last
        write to train.log (lerobot-train logs every few seconds)."""
        run_dir = run.dir(self.plan.root)
        state_path = run_dir / "state.json"
        state = json.loads(state_path.read_text()) if state_path.is_file() else {}
        attempt = state.get("stages", {}).get("train", {}).get("attempt")
        if not attempt:
            return
        log = run_dir / "train.log"
        ended_at = log.stat().st_mtime if log.is_file() else float(attempt["started"])
        self._close_attempt(run, attempt, ended_at)

    def _close_attempt(self, run: Run, attempt: dict, ended_at: float) -> None:
        useful, lost = interrupted_attempt_seconds(run.dir(self.plan.root) / "train", attempt, ended_at)
        entry = json.loads((run.dir(self.plan.root) / "state.json").read_text())["stages"]["train"]
        write_state(self.plan, run, stage=("train", {"seconds": useful, "lost_seconds": lost, "attempt": None,
                                                     "interrupted_attempts": entry.get("interrupted_attempts", 0) + 1}))
        self.log(f"{run.name}: an interrupted training attempt counted ({useful:.0f} s up to its last checkpoint, "
                 f"{lost:.0f} s after it redone)")

    def _train_segment(self, run: Run, resume: bool) -> None:
        """Train (or resume) up to the next segment end (Plan.segment_ends)."""
        plan, run_dir = self.plan, run.dir(self.plan.root)
        saved = checkpoint_step(run_dir / "train") if resume else None
        end = plan.next_segment_end(saved)
        cmd, log = plan.segment_command(run, end, resume), run_dir / "train.log"
        what = f"resuming from step {saved}" if resume else "training"
        self.log(f"{run.name}: {what} to step {end}; log {log}")
        start = time.time()
        # Until this segment ends, the state holds the attempt, so a runner killed meanwhile (the work session
        # ended) still has its time counted when the same command runs again.
        attempt = {"started": start, "from_step": saved}
        write_state(plan, run, status="training",
                    stage=("train", {"command": _shell(cmd, plan.train_env(run)), "attempt": attempt}))
        self._record(run, "train", cmd, plan.train_env(run))
        with self._active(run, "train", log):
            rc = self._run(cmd, log, plan.train_env(run))
        if rc != 0 or checkpoint_step(run_dir / "train") != end:
            write_state(plan, run, status="failed", stage=("train", {"returncode": rc}))
            self._close_attempt(run, attempt, time.time())
            raise MatrixError(f"run {run.name}: lerobot-train exited {rc} before step {end}; see {log}.")
        write_state(plan, run, stage=("train", {"returncode": 0, "seconds": round(time.time() - start, 1),
                                                "attempt": None}))
        self.log(f"{run.name}: trained to step {end} in {time.time() - start:.0f} s")

    def _run_stage(self, run: Run, stage: str, cmd: list[str], ckpt: Path) -> None:
        """One evaluation stage into <run>/<stage>/, marked done only when its command succeeded."""
        plan, run_dir = self.plan, run.dir(self.plan.root)
        stage_dir = run_dir / stage
        if (stage_dir / DONE).is_file():
            self.log(f"{run.name}: {stage} done, skipped")
            return
        if stage_dir.exists():
            shutil.rmtree(stage_dir)  # a partial stage must never look complete
        if not (ckpt / "config.json").is_file():
            raise MatrixError(f"run {run.name}: stage {stage} needs the checkpoint {ckpt}, which this training did "
                              "not save (check save_freq, or delete the run's train/ folder to retrain it).")
        self.log(f"{run.name}: {stage}")
        write_state(plan, run, status=stage, stage=(stage, {"command": _shell(cmd)}))
        self._record(run, stage, cmd)
        start = time.time()
        log = run_dir / f"{stage}.log"
        with self._active(run, stage, log):
            rc = self._run(cmd, log)
        if rc != 0:
            write_state(plan, run, status="failed", stage=(stage, {"returncode": rc}))
            raise MatrixError(f"run {run.name}: {stage} exited {rc}; see {log}.")
        stage_dir.mkdir(parents=True, exist_ok=True)
        (stage_dir / DONE).write_text(json.dumps({"seconds": round(time.time() - start, 1)}))
        write_state(plan, run, stage=(stage, {"returncode": 0, "seconds": round(time.time() - start, 1)}))

    @contextlib.contextmanager
    def _active(self, run: Run, stage: str, log: Path):
        """Marks the run's stage (writing ``log``) as running for the progress lines while its command runs."""
        with self.lock:
            self.active[run.name] = (stage, time.time(), log)
        try:
            yield
        finally:
            with self.lock:
                self.active.pop(run.name, None)

    def _progress(self, stop: threading.Event, total: int) -> None:
        while not stop.wait(self.plan.cfg.progress_every_s):
            with self.lock:
                active = dict(self.active)
                done = self.done
            parts = [_progress_text(name, *entry) for name, entry in active.items()]
            self.log(f"{done}/{total} runs done; running: {', '.join(parts) or '-'}")

    def run(self, selected: list[Run]) -> int:
        self.selected = selected
        self.exported = self.plan.exported(selected)
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


def _progress_text(name: str, stage: str, started: float, log_path: Path) -> str:
    """'C_s0 step 3K' while training (LeRobot's last logged step), 'C_s0 eval_sim 12 min' during a stage."""
    if stage == "train":
        return f"{name} {_last_step(log_path)}"
    return f"{name} {stage} {(time.time() - started) / 60:.0f} min"


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


def describe(plan: Plan, exported: dict | None = None) -> str:
    lines = [
        f"matrix {plan.cfg.name!r}: {len(plan.runs)} runs, preset {plan.preset.name}, output {plan.root}",
        f"parallel trainings: {plan.parallel} (num_workers {plan.workers_per_run} each)",
    ]
    if plan.results_dir is not None:
        lines.append(f"results: {plan.results_dir} ({len(exported or {})} of {len(plan.runs)} runs exported)")
    for key, out in plan.tables.items():
        lines.append(f"  table {out.name}: {_shell(plan.tokenize_command(key, out))}")
    for run in plan.runs:
        status = "exported" if run.name in (exported or {}) else train_status(plan, run)
        lines.append(f"  [{status:>8}] {run.name}")
    return "\n".join(lines)


USAGE = """usage: lerobot-world matrix --config=configs/matrix/NAME.yaml [--dry_run] [--only=RUN,RUN] [--allow_slow_bf16]
       [--KEY=VALUE ...]
Any other --KEY=VALUE overrides the matrix file (e.g. --output_dir=..., --wandb.mode=offline).
Matrix file fields:"""


def _cli_bool(key: str, value: str) -> bool:
    """A runner flag given bare (`--dry_run`) or as `--dry_run=true|false|1|0`."""
    if value.lower() not in ("", "true", "false", "1", "0"):
        raise MatrixError(f"{key}={value!r} is not a boolean; expected true or false.")
    return value.lower() in ("", "true", "1")


def _parse_cli(argv: list[str]) -> tuple[CLIArgs, list[str]]:
    """--config/--dry_run/--only/--allow_slow_bf16 are the runner's; everything else overrides the matrix file."""
    cli, rest = CLIArgs(), []
    for arg in argv:
        key, _, value = arg.partition("=")
        if key == "--config":
            cli.config = value
        elif key == "--dry_run":
            cli.dry_run = _cli_bool(key, value)
        elif key == "--only":
            cli.only = [v for v in value.split(",") if v]
        elif key == "--allow_slow_bf16":
            cli.allow_slow_bf16 = _cli_bool(key, value)
        else:
            rest.append(arg)
    return cli, rest


def _refuse_slow_bf16(plan: Plan) -> None:
    """A CPU matrix that sets policy.use_amp, on a CPU without oneDNN bf16 kernels (AVX2 only: no AVX-512 BF16,
    no AMX), would train many times slower than fp32: cpu_study's A_s0 ran 13 s/step there against ~1.5 s in
    fp32. Switching such a study to fp32 would mix precisions across its runs, so stop before the first step
    and say where it can run instead."""
    import torch

    from lerobot_world.policy.precision import cpu_has_bf16_kernels

    policy = plan.preset.policy
    if str(policy.get("device", "cpu")) != "cpu" or _parse_scalar(policy.get("use_amp", False)) is not True:
        return
    if cpu_has_bf16_kernels():
        return
    raise MatrixError(
        f"matrix {plan.cfg.name!r} trains with policy.use_amp=true on CPU, but this CPU has no bf16 kernels "
        f"(torch.ops.mkldnn._is_mkldnn_bf16_supported() is False; capability "
        f"{torch.backends.cpu.get_cpu_capability()}), where bf16 runs many times slower than fp32; expected a CPU "
        "with AVX-512 BF16 or AMX. Run it on such a machine, or pass --allow_slow_bf16=true to train here anyway."
    )


def main(argv: list[str] | None = None) -> None:
    """Bad input (config, preset, results tree, dataset fingerprint): one sentence on stderr, exit 2; runs that
    failed: exit 1 (re-running the same command resumes them)."""
    import draccus

    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        draccus.parse(MatrixConfig, args=["--help"])
        return
    try:
        cli, rest = _parse_cli(argv)
        if not cli.config:
            raise MatrixError("pass --config=configs/matrix/NAME.yaml (a matrix file; see configs/matrix/).")
        plan = make_plan(load_config(cli.config, rest))
        selected = plan.runs
        if cli.only:
            names = {r.name for r in plan.runs}
            bad = [n for n in cli.only if n not in names]
            if bad:
                raise MatrixError(f"--only names unknown run(s) {bad}; the matrix has {sorted(names)}.")
            selected = [r for r in plan.runs if r.name in cli.only]
        exported = plan.exported()
        print(describe(plan, exported), flush=True)
        if cli.dry_run:
            plan.root.mkdir(parents=True, exist_ok=True)
            print(f"dry run: commands written to {write_reproduce(plan)}; nothing executed.")
            return
        if not cli.allow_slow_bf16:
            _refuse_slow_bf16(plan)
        if plan.results_dir is not None:
            # Before anything runs: the committed results must have been made from this very dataset.
            record, written = study_results.check_dataset(plan.results_dir, plan.cfg.dataset.repo_id, plan.cfg.dataset.root)
            print(f"dataset {record['repo_id']}: fingerprint {record['fingerprint']} "
                  f"({'recorded in' if written else 'matches'} {plan.results_dir / study_results.DATASET_FILE})", flush=True)
        with _MatrixLock(plan.root):
            write_plan_files(plan, plan.root)
            if plan.results_dir is not None:
                write_plan_files(plan, plan.results_dir)
            print(f"commands: {plan.root / 'reproduce.sh'}", flush=True)
            n_failed = Runner(plan).run(selected)
    except UserError as e:
        fail(str(e))
    if n_failed:  # not bad input: the runs' logs say what went wrong
        print(f"error: {n_failed} run(s) failed; re-run the same command to resume.", file=sys.stderr, flush=True)
        sys.exit(1)
    where = plan.root / "runs" if plan.results_dir is None else plan.results_dir / "runs"
    print(f"matrix {plan.cfg.name!r}: all {len(selected)} runs done in {where}")


