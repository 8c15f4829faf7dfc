"""`lerobot-world eval-offline`: score world_vla checkpoints on their training run's held-out episodes.

What it measures (DESIGN §5), per checkpoint:
- action error of the full predicted chunk (non-padded steps only): MSE and L1, normalized (the
  policy's own units) and raw (through the checkpoint's saved postprocessor), per action dimension,
  and at the first step; 95% bootstrap intervals resample *episodes* within their task (frames of one
  episode are not independent), and are withheld below ``stats.MIN_UNITS`` resampled episodes
  (``ci95`` None, ``intervals.too_small``: "n too small");
- world-token top-1 / top-5 per horizon k = 1..K (variants that predict tokens), beside the copy
  baseline ("the world does not change", on exactly the pairs the model is scored on) and the
  majority/bigram baseline (``token_stats``: successors counted on the training episodes), and the same
  on the changed pairs w_{t+k} != w_t (``n_changed``, ``top1_changed``, ``top5_changed``), where the copy
  baseline is 0 by definition;
- the causal corruption test: every batch is predicted clean and with the world input replaced by
  random ids, a batch shuffle and the mask id, through the same ``predict_action_chunk`` call
  (``policy.world_corruption``). Ratios are measured for every variant; for a variant without world
  input they come out 1.0 because the predictions are identical, not because 1.0 is written in;
- ``per_episode``: each held-out episode's index, task, frames, chunk steps, value count, clean and
  corrupted squared-error sums and world counts per k, so the report can pair two checkpoints on the
  same held-out frames and pool training seeds hierarchically.

Held-out episodes come from the checkpoint's ``train_config.json`` (``dataset.eval_split``,
``dataset.episodes``) through ``lerobot_world.splits`` — the rule ``lerobot-train`` used to hold them
out. Batches are drawn in a seeded random order (not episode order) so that "shuffle across the
batch" swaps in world tokens from other episodes rather than the neighbouring frame. Each batch is
decoded once and reused for every pass and every checkpoint that shares the held-out set, so the
cost is dominated by the model forwards (the timing section measures this).

Example:
    lerobot-world eval-offline --policy.path=runs/C/checkpoints/last/pretrained_model \\
        --policy.path=runs/A/checkpoints/last/pretrained_model \\
        --dataset.repo_id=HuggingFaceVLA/libero --dataset.root=/data/libero --output_dir=eval/offline

The pieces live beside this command module: ``checkpoints`` (checkpoints and their held-out split),
``scoring`` (``CheckpointEval`` and the bootstrap) and ``results_md`` (results.md).
"""

import json
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lerobot_world.dataset import open_metadata
from lerobot_world.devices import resolve_device
from lerobot_world.errors import parse_config, run_command
from lerobot_world.offline.checkpoints import (
    EvalOfflineError,
    load_checkpoint,
    name_checkpoints,
)
from lerobot_world.offline.results_md import render_markdown
from lerobot_world.offline.scoring import CheckpointEval
from lerobot_world.outputs import staged_dir
from lerobot_world.vocabulary import CORRUPTIONS

RESULTS_FORMAT = "lerobot_world.eval_offline/1"
RESULT_FILES = ("results.json", "results.md")


@dataclass
class PolicyPaths:
    # Checkpoint directories (a `pretrained_model/` dir, or a run dir / `checkpoints/<step>` above it).
    # Repeat --policy.path=... for several checkpoints, or pass a list: --policy.path='[a,b]'.
    path: list[str] = field(default_factory=list)


@dataclass
class EvalDatasetArgs:
    # Default: the dataset recorded in the first checkpoint's train_config.json.
    repo_id: str | None = None
    root: str | None = None
    # Default: the training run's video backend (LeRobot's default if unknown).
    video_backend: str | None = None


@dataclass
class EvalOfflineConfig:
    policy: PolicyPaths = field(default_factory=PolicyPaths)
    dataset: EvalDatasetArgs = field(default_factory=EvalDatasetArgs)
    # Where results.json and results.md go (required). Created if missing; only earlier eval-offline
    # results in it are replaced.
    output_dir: str | None = None
    # Frames per forward pass (the last batch may be smaller).
    batch_size: int = 32
    # Seeds the batch order, the random-id corruption and the bootstrap.
    seed: int = 0
    # Bootstrap resamples of episodes for the 95 percent intervals (0 = no intervals).
    n_bootstrap: int = 1000
    # 'auto' = cuda when available, else cpu.
    device: str = "auto"
    # DataLoader workers decoding frames (each batch is decoded once for all passes and checkpoints).
    num_workers: int = 0
    # Override every checkpoint's --policy.world_tokens (the table moved since training).
    world_tokens: str | None = None
    # Only for checkpoints without train_config.json: the eval_split their training used.
    eval_split: float | None = None

# ----------------------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------------------


def _check_output_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise EvalOfflineError(f"--output_dir={out} exists and is not a directory")
    if out.is_dir():
        other = sorted(
            p.name
            for p in out.iterdir()
            if p.name not in RESULT_FILES and not p.name.startswith(".eval_offline-")
        )
        if other:
            raise EvalOfflineError(
                f"--output_dir={out} already holds other files ({', '.join(other[:3])}); expected a new or empty "
                "directory, or one holding earlier eval-offline results"
            )


def _action_names(meta, n: int) -> list[str]:
    names = meta.features.get("action", {}).get("names")
    if isinstance(names, dict):
        names = next(iter(names.values()), None)
    if not isinstance(names, list) or len(names) != n:
        names = [f"a{i}" for i in range(n)]
    return [str(x) for x in names]


def evaluate(cfg: EvalOfflineConfig, command: str = "") -> tuple[dict, str]:
    """Run the whole evaluation; returns (results dict, markdown). Bad input -> EvalOfflineError.

    Cheap checks (flags, checkpoint files) run before torch/LeRobot are imported, so bad input fails fast."""
    if not cfg.policy.path:
        raise EvalOfflineError("--policy.path is required: one or more world_vla checkpoint directories")
    if cfg.batch_size < 1 or cfg.n_bootstrap < 0 or cfg.num_workers < 0:
        raise EvalOfflineError(
            f"--batch_size must be >= 1 and --n_bootstrap, --num_workers >= 0; got {cfg.batch_size}, "
            f"{cfg.n_bootstrap}, {cfg.num_workers}"
        )
    ckpts = [load_checkpoint(p) for p in cfg.policy.path]
    if len({c.path for c in ckpts}) != len(ckpts):
        raise EvalOfflineError("the same checkpoint was passed twice in --policy.path")
    name_checkpoints(ckpts)

    import torch
    from lerobot.datasets.factory import resolve_delta_timestamps
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.utils.collate import lerobot_collate_fn
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    device = resolve_device(cfg.device)

    first_ds = (ckpts[0].train_config or {}).get("dataset", {})
    repo_id = cfg.dataset.repo_id or first_ds.get("repo_id")
    root = cfg.dataset.root if cfg.dataset.repo_id else (cfg.dataset.root or first_ds.get("root"))
    if not repo_id:
        raise EvalOfflineError("--dataset.repo_id is required (the checkpoint records no training dataset)")
    meta = open_metadata(repo_id, root)
    notes: list[str] = []
    for c in ckpts:
        trained_on = (c.train_config or {}).get("dataset", {}).get("repo_id")
        if trained_on and trained_on != repo_id:
            notes.append(f"{c.name} was trained on dataset {trained_on!r}, evaluated here on {repo_id!r}.")

    torch.manual_seed(cfg.seed)
    evals = [CheckpointEval(c, meta, device, cfg.world_tokens, cfg.eval_split) for c in ckpts]
    heldouts = {tuple(e.split.heldout) for e in evals}
    if len(heldouts) > 1:
        notes.append("The checkpoints hold out different episodes: their numbers are not on the same frames.")

    # Group checkpoints that read the same frames, so each batch is decoded once for all of them.
    groups: dict[tuple, list[CheckpointEval]] = {}
    for e in evals:
        dt = resolve_delta_timestamps(e.cfg, meta)
        key = (tuple(e.split.heldout), json.dumps(dt, sort_keys=True, default=str))
        groups.setdefault(key, []).append(e)

    timings: dict[str, dict] = {}
    for (heldout, dt_json), members in groups.items():
        tc = members[0].ckpt.train_config or {}
        video_backend = cfg.dataset.video_backend or tc.get("dataset", {}).get("video_backend")
        ds = LeRobotDataset(
            repo_id,
            root=meta.root,
            episodes=list(heldout),
            delta_timestamps=json.loads(dt_json),
            video_backend=video_backend,
            return_uint8=True,
            tolerance_s=float(tc.get("tolerance_s", 1e-4)),
        )
        # Seeded random order: batch-shuffle corruption then swaps in other episodes' world tokens.
        order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(cfg.seed)).tolist()
        loader = DataLoader(
            ds,
            batch_size=cfg.batch_size,
            sampler=order,
            num_workers=cfg.num_workers,
            collate_fn=lerobot_collate_fn if meta.has_language_columns else None,
        )
        for e in members:
            e.start(cfg.seed)
        names = ", ".join(e.ckpt.name for e in members)
        t_start = time.perf_counter()
        data_s = 0.0
        t0 = time.perf_counter()
        with torch.no_grad():
            for batch in tqdm(loader, desc=f"eval-offline [{names}] {len(heldout)} episodes", unit="batch"):
                for key in meta.camera_keys:
                    if key in batch and batch[key].dtype == torch.uint8:
                        batch[key] = batch[key].to(dtype=torch.float32) / 255.0
                data_s += time.perf_counter() - t0
                for e in members:
                    e.step(batch)
                t0 = time.perf_counter()
        wall = time.perf_counter() - t_start
        forward = sum(e.forward_s for e in members)
        n_frames = len(ds)
        passes = 1 + len(CORRUPTIONS)
        t = {
            "checkpoints": [e.ckpt.name for e in members],
            "device": device,
            "frames": n_frames,
            "passes_per_frame": passes * len(members),
            "wall_s": wall,
            "data_s": data_s,
            "forward_s": forward,
            "other_s": max(0.0, wall - data_s - forward),
            "forward_fraction": forward / wall if wall > 0 else None,
            "frames_per_s": n_frames / wall if wall > 0 else None,
            "forward_frames_per_s": n_frames * passes * len(members) / forward if forward > 0 else None,
            "torch_threads": torch.get_num_threads(),
        }
        for e in members:
            timings[e.ckpt.name] = t
        print(
            f"[{names}] {n_frames} held-out frames x {passes * len(members)} forward passes in {wall:.1f} s "
            f"({t['frames_per_s']:.1f} frames/s; model forward {forward:.1f} s = {100 * t['forward_fraction']:.0f}% "
            f"of the time, data {data_s:.1f} s; {t['forward_frames_per_s']:.1f} frame-forwards/s on {device})"
        )

    action_dim = int(meta.features["action"]["shape"][0])
    action_names = _action_names(meta, action_dim)
    results_ckpts = []
    for e in evals:
        r = e.results(cfg.n_bootstrap, cfg.seed, action_names)
        e.close()
        tc = e.ckpt.train_config or {}
        results_ckpts.append(
            {
                "name": e.ckpt.name,
                "path": str(e.ckpt.path),
                "variant": e.cfg.variant,
                "uses_world_input": bool(e.cfg.uses_world_input),
                "predicts_world": bool(e.cfg.predicts_world),
                "training": {
                    "dataset": tc.get("dataset", {}).get("repo_id"),
                    "eval_split": e.split.eval_split,
                    "episodes": tc.get("dataset", {}).get("episodes"),
                    "steps": tc.get("steps"),
                    "seed": tc.get("seed"),
                    "train_config": "train_config.json" if e.ckpt.train_config is not None else None,
                },
                "split": {
                    "eval_split": e.split.eval_split,
                    "heldout_episodes": list(e.split.heldout),
                    "n_train_episodes": len(e.split.train),
                },
                "chunk_size": int(e.cfg.chunk_size),
                "world_tokens": e.cfg.world_tokens if e.predicts_world else None,
                **r,
                "timing": timings[e.ckpt.name],
            }
        )
    results = {
        "format": RESULTS_FORMAT,
        "command": command,
        "seed": cfg.seed,
        "n_bootstrap": cfg.n_bootstrap,
        "batch_size": cfg.batch_size,
        "device": device,
        "dataset": {
            "repo_id": repo_id,
            "root": str(meta.root),
            "total_episodes": int(meta.total_episodes),
            "total_frames": int(meta.total_frames),
        },
        "corruption_modes": {
            "random": "every world-input id replaced by a uniform random id (seeded)",
            "shuffle": "world inputs rolled by one across the batch (batches in seeded random order)",
            "mask": "every world-input id replaced by the mask id (vocab_size)",
        },
        "notes": notes,
        "checkpoints": results_ckpts,
    }
    return results, render_markdown(results)


# ----------------------------------------------------------------------------------------------------
# output and CLI
# ----------------------------------------------------------------------------------------------------


def write_outputs(out: Path, results: dict, markdown: str) -> None:
    """Both files appear together, replacing earlier results (_check_output_dir allows only those there)."""
    with staged_dir(out) as staged:
        (staged.path / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        (staged.path / "results.md").write_text(markdown)


def run(cfg: EvalOfflineConfig, command: str = "") -> Path:
    if not cfg.output_dir:
        raise EvalOfflineError("--output_dir is required (where results.json and results.md are written)")
    out = Path(cfg.output_dir).expanduser().resolve()
    _check_output_dir(out)
    results, markdown = evaluate(cfg, command)
    _check_output_dir(out)
    write_outputs(out, results, markdown)
    return out


def _merge_policy_paths(argv: list[str]) -> list[str]:
    """Turn repeated `--policy.path=X` flags into draccus's list form `--policy.path=[X,Y]`."""
    paths, rest, i = [], [], 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--policy.path="):
            v = a.split("=", 1)[1]
            if v.startswith("["):
                paths.extend(x.strip() for x in v.strip("[]").split(",") if x.strip())
            else:
                paths.append(v)
        elif a == "--policy.path" and i + 1 < len(argv):
            paths.append(argv[i + 1])
            i += 1
        else:
            rest.append(a)
        i += 1
    if paths:
        rest.append("--policy.path=[" + ",".join(paths) + "]")
    return rest


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = "lerobot-world eval-offline " + shlex.join(argv)
    out = run_command(lambda: run(parse_config(EvalOfflineConfig, _merge_policy_paths(argv)), command))
    print(f"eval-offline results written to {out / 'results.json'} and {out / 'results.md'}")


if __name__ == "__main__":
    main()
