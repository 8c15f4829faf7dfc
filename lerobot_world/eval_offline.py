"""`lerobot-world eval-offline`: score world_vla checkpoints on their training run's held-out episodes.

What it measures (DESIGN §5), per checkpoint:
- action error of the full predicted chunk (non-padded steps only): MSE and L1, normalized (the
  policy's own units) and raw (through the checkpoint's saved postprocessor), per action dimension,
  and at the first step; 95% bootstrap intervals resample *episodes* (frames of one episode are not
  independent);
- world-token top-1 / top-5 per horizon k = 1..K (variants that predict tokens), beside the copy
  baseline ("the world does not change", on exactly the pairs the model is scored on) and the
  majority/bigram baseline (``token_stats``: successors counted on the training episodes);
- the causal corruption test: every batch is predicted clean and with the world input replaced by
  random ids, a batch shuffle and the mask id, through the same ``predict_action_chunk`` call
  (``policy.world_corruption``). Ratios are measured for every variant; for a variant without world
  input they come out 1.0 because the predictions are identical, not because 1.0 is written in.

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
"""

import json
import math
import os
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

RESULTS_FORMAT = "lerobot_world.eval_offline/1"
MODES = ("random", "shuffle", "mask")
RESULT_FILES = ("results.json", "results.md")


class EvalOfflineError(Exception):
    """Bad input: the CLI prints `error: <message>` and exits with status 2."""


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
# checkpoints and splits
# ----------------------------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    path: Path
    variant: str
    train_config: dict | None
    name: str = ""


def resolve_checkpoint_dir(raw: str) -> Path:
    """The `pretrained_model` dir for a path given as that dir, a `checkpoints/<step>` dir or a run dir."""
    path = Path(raw).expanduser()
    if not path.exists():
        raise EvalOfflineError(
            f"--policy.path={raw} does not exist; expected a checkpoint directory such as "
            "outputs/train/RUN/checkpoints/last/pretrained_model"
        )
    for cand in (path, path / "pretrained_model", path / "checkpoints" / "last" / "pretrained_model"):
        if (cand / "config.json").is_file():
            return cand.resolve()
    raise EvalOfflineError(
        f"--policy.path={raw} holds no config.json; expected a LeRobot pretrained_model directory "
        "(config.json, model.safetensors, processor files)"
    )


def load_checkpoint(raw: str) -> Checkpoint:
    path = resolve_checkpoint_dir(raw)
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise EvalOfflineError(f"--policy.path={raw}: config.json is not readable JSON ({e})") from None
    ptype = config.get("type")
    if ptype != "world_vla":
        raise EvalOfflineError(
            f"--policy.path={raw} is a {ptype!r} policy, not a world_vla policy; eval-offline scores world_vla "
            "checkpoints (variants A, B, C, C_no_world_input)"
        )
    train_config = None
    if (path / "train_config.json").is_file():
        try:
            train_config = json.loads((path / "train_config.json").read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise EvalOfflineError(
                f"--policy.path={raw}: train_config.json is not readable JSON ({e})"
            ) from None
    return Checkpoint(path=path, variant=str(config.get("variant", "A")), train_config=train_config)


def training_split_args(ckpt: Checkpoint, eval_split_flag: float | None) -> tuple[float, list[int] | None]:
    """(eval_split, episodes) of the checkpoint's training run, from its train_config.json."""
    if ckpt.train_config is None:
        if eval_split_flag is None:
            raise EvalOfflineError(
                f"checkpoint {ckpt.path} has no train_config.json, so its training run's held-out episodes are "
                "unknown; pass --eval_split=F with the --dataset.eval_split it was trained with"
            )
        return float(eval_split_flag), None
    ds = ckpt.train_config.get("dataset", {})
    eval_split = float(ds.get("eval_split") or 0.0)
    episodes = ds.get("episodes")
    if eval_split_flag is not None and not math.isclose(eval_split_flag, eval_split):
        raise EvalOfflineError(
            f"--eval_split={eval_split_flag} disagrees with the training run of {ckpt.path} "
            f"(dataset.eval_split={eval_split}); drop the flag to score its real held-out episodes"
        )
    if eval_split <= 0.0:
        raise EvalOfflineError(
            f"checkpoint {ckpt.path} was trained with dataset.eval_split={eval_split}: every episode was used for "
            "training and none is held out; train with --dataset.eval_split=F (e.g. 0.2) to evaluate offline"
        )
    return eval_split, (list(map(int, episodes)) if episodes is not None else None)


def heldout_split(ckpt: Checkpoint, meta, eval_split_flag: float | None = None):
    """The training run's train/held-out episodes (`lerobot_world.splits`, LeRobot's eval_split rule)."""
    from lerobot_world.splits import split_dataset

    eval_split, episodes = training_split_args(ckpt, eval_split_flag)
    try:
        return split_dataset(meta, eval_split, episodes)
    except ValueError as e:
        raise EvalOfflineError(f"checkpoint {ckpt.path}: {e}") from None


def _names(ckpts: list[Checkpoint]) -> None:
    """Display names: the variant, plus the run dir/step when two checkpoints share a variant."""
    for c in ckpts:
        p = c.path
        run = (
            f"{p.parents[2].name}/{p.parent.name}"
            if p.name == "pretrained_model" and p.parent.parent.name == "checkpoints"
            else p.name
        )
        c.name = c.variant if sum(o.variant == c.variant for o in ckpts) == 1 else f"{c.variant} ({run})"
    seen: dict[str, int] = {}
    for c in ckpts:  # still ambiguous (same run name): number them
        if c.name in seen:
            seen[c.name] += 1
            c.name = f"{c.name} #{seen[c.name]}"
        else:
            seen[c.name] = 1


def check_dataset_has_policy_inputs(cfg, meta, ckpt_path: Path) -> None:
    """One clear sentence when the dataset lacks a camera (or state/action) the policy reads."""
    cameras = list(meta.camera_keys)
    for key in cfg.image_features:
        if key not in cameras:
            raise EvalOfflineError(
                f"dataset {meta.repo_id} at {meta.root} has no camera {key!r}, which the policy at {ckpt_path} "
                f"uses; its cameras are {cameras}"
            )
    for key in [k for k in cfg.input_features if k not in cfg.image_features] + ["action"]:
        if key not in meta.features:
            raise EvalOfflineError(
                f"dataset {meta.repo_id} at {meta.root} has no feature {key!r}, which the policy at {ckpt_path} uses"
            )


# ----------------------------------------------------------------------------------------------------
# bootstrap
# ----------------------------------------------------------------------------------------------------


def bootstrap_weights(n_episodes: int, n_bootstrap: int, seed: int) -> np.ndarray | None:
    """(n_bootstrap, n_episodes) multiplicities of episodes resampled with replacement (seeded)."""
    if n_bootstrap <= 0 or n_episodes < 1:
        return None
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_episodes, np.full(n_episodes, 1.0 / n_episodes), size=n_bootstrap).astype(
        np.float64
    )


def ratio_ci(num: np.ndarray, den: np.ndarray, weights: np.ndarray | None) -> list[float] | None:
    """95% percentile interval of sum(num)/sum(den) over episode resamples (per-episode sums in)."""
    if weights is None:
        return None
    n, d = weights @ num, weights @ den
    ok = d > 0
    if not ok.any():
        return None
    vals = n[ok] / d[ok]
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return [float(lo), float(hi)]


def _ratio(num, den) -> float | None:
    num, den = float(np.sum(num)), float(np.sum(den))
    return num / den if den > 0 else None


# ----------------------------------------------------------------------------------------------------
# one checkpoint: per-frame accumulators filled batch by batch
# ----------------------------------------------------------------------------------------------------


class CheckpointEval:
    """A loaded checkpoint (policy + saved processors) and the per-frame sums of everything it scores."""

    def __init__(self, ckpt: Checkpoint, run_cfg: EvalOfflineConfig, meta, device: str):
        import torch
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.factory import make_policy, make_pre_post_processors

        import lerobot_world.configuration_world_vla  # noqa: F401  (registers the world_vla config type)

        self.ckpt = ckpt
        self.device = torch.device(device)
        try:
            cfg = PreTrainedConfig.from_pretrained(str(ckpt.path))
        except Exception as e:  # draccus decoding errors: name the file, keep one line
            raise EvalOfflineError(
                f"could not read the policy config of {ckpt.path}: {str(e).splitlines()[0]}"
            ) from None
        cfg.pretrained_path = str(ckpt.path)
        cfg.device = device
        if run_cfg.world_tokens:
            cfg.world_tokens = str(Path(run_cfg.world_tokens).expanduser().resolve())
        check_dataset_has_policy_inputs(cfg, meta, ckpt.path)
        if cfg.predicts_world and (not cfg.world_tokens or not Path(cfg.world_tokens).is_dir()):
            raise EvalOfflineError(
                f"the world-token table of {ckpt.path} ({cfg.world_tokens}) does not exist here; pass "
                "--world_tokens=DIR with the table it was trained on"
            )
        self.split = heldout_split(ckpt, meta, run_cfg.eval_split)
        if not self.split.heldout:
            raise EvalOfflineError(
                f"checkpoint {ckpt.path}: its split holds out no episodes of dataset {meta.repo_id}"
            )
        try:
            self.policy = make_policy(cfg, ds_meta=meta)
        except (ValueError, KeyError) as e:
            raise EvalOfflineError(
                f"could not load the policy at {ckpt.path}: {str(e).strip().splitlines()[0]}"
            ) from None
        self.policy.eval()
        self.cfg = self.policy.config
        self.pre, self.post = make_pre_post_processors(
            self.cfg,
            pretrained_path=str(ckpt.path),
            preprocessor_overrides={"device_processor": {"device": device}},
        )
        self.table = getattr(self.policy, "_table", None)
        self.predicts_world = bool(self.cfg.predicts_world)
        self.K = int(self.cfg.future_offset) if self.predicts_world else 0
        self._logits = None
        self._hook = self.policy.model.register_forward_hook(self._capture)
        self.rows: dict[str, list] = {}
        self.max_abs_diff = {m: 0.0 for m in MODES}
        self.forward_s = 0.0
        self.n_forwards = 0

    def _capture(self, module, inputs, output):
        """World logits of the forward that just ran (the model returns (actions, logits, vae))."""
        self._logits = output[1]

    def start(self, seed: int) -> None:
        """Fresh state for a deterministic pass: policy reset, corruption RNG seeded, sums cleared."""
        self.policy.reset()
        rng = getattr(self.policy, "_corruption_rng", None)
        if rng is not None:
            rng.manual_seed(seed)
        self.policy.world_corruption = None
        self.rows = {}
        self.max_abs_diff = {m: 0.0 for m in MODES}
        self.forward_s, self.n_forwards = 0.0, 0

    def _add(self, key: str, value) -> None:
        self.rows.setdefault(key, []).append(value.detach().cpu().double().numpy())

    def _predict(self, batch, mode):
        import torch

        self.policy.world_corruption = mode
        self._logits = None
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        sync()
        t0 = time.perf_counter()
        actions = self.policy.predict_action_chunk(batch)
        sync()
        self.forward_s += time.perf_counter() - t0
        self.n_forwards += 1
        self.policy.world_corruption = None
        return actions, self._logits

    def step(self, batch: dict) -> None:
        """Score one dataset batch (images already float in [0, 1], not yet preprocessed)."""
        raw_target = batch["action"].double()
        pad = batch["action_is_pad"].bool()
        b = self.pre(dict(batch))
        target = b["action"].detach().cpu().double()
        keep = (~pad).double().unsqueeze(-1)  # (B, T, 1)
        self._add("episode", batch["episode_index"].reshape(-1))
        self._add("n_steps", (~pad).sum(1))
        self._add("first_ok", (~pad[:, 0]).long())

        world = None
        if self.predicts_world:
            _, targets, valid = self.policy._gather_world(b)
            current = self.table.tokens[b["index"].reshape(-1).long().cpu()]
            world = (targets.cpu(), valid.cpu(), current)
            self._add("w_valid", valid.cpu().long())
            self._add("w_copy", ((targets.cpu() == current[:, None]) & valid.cpu()).long())

        clean, logits = self._predict(b, None)
        clean_cpu = clean.detach().cpu().double()
        err = (clean_cpu - target) * keep
        self._add("n_se_dim", err.pow(2).sum(1))
        self._add("n_ae_dim", err.abs().sum(1))
        self._add("n_se_first", err[:, 0].pow(2))
        self._add("n_ae_first", err[:, 0].abs())
        raw_pred = self.post(clean).detach().cpu().double()
        rerr = (raw_pred - raw_target) * keep
        self._add("r_se_dim", rerr.pow(2).sum(1))
        self._add("r_ae_dim", rerr.abs().sum(1))
        self._add("r_se_first", rerr[:, 0].pow(2))
        self._add("r_ae_first", rerr[:, 0].abs())
        self._add("clean_se", err.pow(2).sum((1, 2)))
        if world is not None:
            self._world_hits("clean", logits, world, top5=True)

        for mode in MODES:
            pred, logits = self._predict(b, mode)
            pred = pred.detach().cpu().double()
            self._add(f"{mode}_se", ((pred - target) * keep).pow(2).sum((1, 2)))
            diff = float((pred - clean_cpu).abs().max()) if pred.numel() else 0.0
            self.max_abs_diff[mode] = max(self.max_abs_diff[mode], diff)
            if world is not None:
                self._world_hits(mode, logits, world, top5=False)

    def _world_hits(self, tag, logits, world, top5: bool) -> None:
        targets, valid, _ = world
        logits = logits.detach().cpu()
        top = logits.topk(min(5, logits.shape[-1]), dim=-1).indices
        self._add(f"w_{tag}_top1", ((top[..., 0] == targets) & valid).long())
        if top5:
            self._add(f"w_{tag}_top5", ((top == targets[..., None]).any(-1) & valid).long())

    def close(self) -> None:
        self._hook.remove()

    # --- aggregation ----------------------------------------------------------------------------------
    def results(self, n_bootstrap: int, seed: int, action_names: list[str]) -> dict:
        cat = {k: np.concatenate(v) for k, v in self.rows.items()}
        episodes = cat["episode"].astype(np.int64)
        eps = np.array(sorted(self.split.heldout), dtype=np.int64)
        scored = np.unique(episodes)
        if not np.array_equal(scored, eps):
            raise RuntimeError(
                f"scored episodes {scored.tolist()} differ from the held-out episodes {eps.tolist()}"
            )
        pos = np.searchsorted(eps, episodes)

        def per_ep(x):
            """Per-episode sums of a per-frame array (frames x ...)."""
            out = np.zeros((len(eps),) + x.shape[1:], dtype=np.float64)
            np.add.at(out, pos, x)
            return out

        W = bootstrap_weights(len(eps), n_bootstrap, seed)
        n_dim = cat["n_se_dim"].shape[1]
        steps = per_ep(cat["n_steps"])  # non-padded chunk steps per episode
        first = per_ep(cat["first_ok"])

        def metric(num_frames, den_ep):
            num = per_ep(num_frames)
            return {"value": _ratio(num, den_ep), "ci95": ratio_ci(num, den_ep, W)}

        def units(prefix):
            se_dim, ae_dim = per_ep(cat[f"{prefix}_se_dim"]), per_ep(cat[f"{prefix}_ae_dim"])
            return {
                "mse": {
                    "value": _ratio(se_dim.sum(1), steps * n_dim),
                    "ci95": ratio_ci(se_dim.sum(1), steps * n_dim, W),
                },
                "l1": {
                    "value": _ratio(ae_dim.sum(1), steps * n_dim),
                    "ci95": ratio_ci(ae_dim.sum(1), steps * n_dim, W),
                },
                "first_step_mse": metric(cat[f"{prefix}_se_first"].sum(1), first * n_dim),
                "first_step_l1": metric(cat[f"{prefix}_ae_first"].sum(1), first * n_dim),
                "per_dim": {
                    "names": action_names,
                    "mse": [_ratio(se_dim[:, d], steps) for d in range(n_dim)],
                    "l1": [_ratio(ae_dim[:, d], steps) for d in range(n_dim)],
                    "mse_ci95": [ratio_ci(se_dim[:, d], steps, W) for d in range(n_dim)],
                },
            }

        out = {
            "n_frames": len(episodes),
            "n_episodes": len(eps),
            "n_chunk_steps": int(steps.sum()),
            "normalized": units("n"),
            "raw": units("r"),
        }

        # corruption: the same predict_action_chunk call with policy.world_corruption set
        clean_se = per_ep(cat["clean_se"])
        den = steps * n_dim
        corruption = {
            "uses_world_input": bool(self.cfg.uses_world_input),
            "clean_mse": _ratio(clean_se, den),
            "modes": {},
        }
        for mode in MODES:
            se = per_ep(cat[f"{mode}_se"])
            corruption["modes"][mode] = {
                "mse": _ratio(se, den),
                "ratio": _ratio(se, clean_se),
                "ratio_ci95": ratio_ci(se, clean_se, W),
                "max_abs_action_change": self.max_abs_diff[mode],
            }

        world = None
        if self.predicts_world:
            world = self._world_results(cat, per_ep, W)
            for mode in MODES:
                hits = per_ep(cat[f"w_{mode}_top1"]).sum(1)
                corruption["modes"][mode]["world_top1"] = _ratio(hits, per_ep(cat["w_valid"]).sum(1))
            corruption["clean_world_top1"] = world["pooled"]["top1"]
        return {"action": out, "world": world, "corruption": corruption}

    def _world_results(self, cat, per_ep, W) -> dict:
        from lerobot_world.token_table import token_stats

        valid = per_ep(cat["w_valid"])  # (E, K)
        top1, top5, copy = per_ep(cat["w_clean_top1"]), per_ep(cat["w_clean_top5"]), per_ep(cat["w_copy"])
        stats = token_stats(
            self.table.tokens,
            self.table.episode_index,
            self.split.train,
            self.split.heldout,
            self.table.vocab_size,
            self.K,
        )["horizons"]
        per_k = []
        for k in range(1, self.K + 1):
            i = k - 1
            base = stats[i] if i < len(stats) else {}
            per_k.append(
                {
                    "k": k,
                    "n": int(valid[:, i].sum()),
                    "top1": _ratio(top1[:, i], valid[:, i]),
                    "top1_ci95": ratio_ci(top1[:, i], valid[:, i], W),
                    "top5": _ratio(top5[:, i], valid[:, i]),
                    "copy": _ratio(copy[:, i], valid[:, i]),
                    "bigram_top1": base.get("bigram_top1"),
                    "bigram_top5": base.get("bigram_top5"),
                    "copy_token_stats": base.get("copy"),
                }
            )

        def avg(key):
            vals = [r[key] for r in per_k if r[key] is not None]
            return float(np.mean(vals)) if len(vals) == len(per_k) and vals else None

        # Mean over k of per-k accuracies (each horizon counts once), and its episode bootstrap.
        ks = [i for i in range(self.K) if valid[:, i].sum() > 0]
        avg_ci = None
        if W is not None and ks:
            acc = np.stack([(W @ top1[:, i]) / np.maximum(W @ valid[:, i], 1) for i in ks], 1).mean(1)
            avg_ci = [float(x) for x in np.percentile(acc, [2.5, 97.5])]
        table_split = (sorted(self.table.train_episodes), sorted(self.table.heldout_episodes))
        return {
            "K": self.K,
            "vocab_size": int(self.table.vocab_size),
            "table": str(self.table.path),
            "per_k": per_k,
            "avg": {
                "top1": avg("top1"),
                "top1_ci95": avg_ci,
                "top5": avg("top5"),
                "copy": avg("copy"),
                "bigram_top1": avg("bigram_top1"),
                "bigram_top5": avg("bigram_top5"),
            },
            "pooled": {"top1": _ratio(top1, valid), "top5": _ratio(top5, valid), "copy": _ratio(copy, valid)},
            "baselines": (
                "copy: P(w_t = w_{t+k}) on the same held-out (t, t+k) pairs the model is scored on; bigram: most "
                "frequent successor at distance k counted on this run's training episodes (token_stats)"
            ),
            "copy_matches_token_stats": all(
                r["copy_token_stats"] is not None
                and r["copy"] is not None
                and math.isclose(r["copy"], r["copy_token_stats"], rel_tol=1e-9)
                for r in per_k
                if r["n"] > 0
            ),
            "table_split_matches": table_split == (sorted(self.split.train), sorted(self.split.heldout)),
        }


# ----------------------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------------------


def _resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise EvalOfflineError(f"--device={name} but CUDA is not available here; expected cpu or auto")
    if name.split(":")[0] not in ("cpu", "cuda", "mps"):
        raise EvalOfflineError(f"--device={name} is not a torch device; expected auto, cpu or cuda[:N]")
    return name


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


def _open_meta(repo_id: str, root: str | None):
    from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata

    root_p = Path(root).expanduser() if root else None
    if root_p is not None and not (root_p / "meta" / "info.json").is_file():
        raise EvalOfflineError(f"--dataset.root={root} is not a LeRobot dataset (no meta/info.json there)")
    try:
        return LeRobotDatasetMetadata(repo_id, root=root_p)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EvalOfflineError(f"could not open dataset {repo_id!r} (root {root}): {first}") from None


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
    _names(ckpts)

    import torch
    from lerobot.datasets.factory import resolve_delta_timestamps
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.utils.collate import lerobot_collate_fn
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    device = _resolve_device(cfg.device)

    first_ds = (ckpts[0].train_config or {}).get("dataset", {})
    repo_id = cfg.dataset.repo_id or first_ds.get("repo_id")
    root = cfg.dataset.root if cfg.dataset.repo_id else (cfg.dataset.root or first_ds.get("root"))
    if not repo_id:
        raise EvalOfflineError("--dataset.repo_id is required (the checkpoint records no training dataset)")
    meta = _open_meta(repo_id, root)
    notes: list[str] = []
    for c in ckpts:
        trained_on = (c.train_config or {}).get("dataset", {}).get("repo_id")
        if trained_on and trained_on != repo_id:
            notes.append(f"{c.name} was trained on dataset {trained_on!r}, evaluated here on {repo_id!r}.")

    torch.manual_seed(cfg.seed)
    evals = [CheckpointEval(c, cfg, meta, device) for c in ckpts]
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
        passes = 1 + len(MODES)
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
# markdown
# ----------------------------------------------------------------------------------------------------


def _f(x, nd=4) -> str:
    if x is None:
        return "—"
    if isinstance(x, float) and (abs(x) >= 1e4 or (0 < abs(x) < 1e-3)):
        return f"{x:.3e}"
    return f"{x:.{nd}f}"


def _ci(m: dict, nd=4) -> str:
    s = _f(m.get("value"), nd)
    ci = m.get("ci95")
    return s + (f" [{_f(ci[0], nd)}, {_f(ci[1], nd)}]" if ci else "")


def render_markdown(res: dict) -> str:
    L = ["# Offline evaluation (held-out episodes)", ""]
    d = res["dataset"]
    L += [
        f"Dataset `{d['repo_id']}` ({d['total_episodes']} episodes, {d['total_frames']} frames) at `{d['root']}`; "
        f"seed {res['seed']}, {res['n_bootstrap']} episode-bootstrap resamples for the 95% intervals, batch size "
        f"{res['batch_size']}, device {res['device']}.",
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
        'change") and the bigram baseline on the same held-out episodes. Corruption columns are corrupted/clean '
        "action MSE, measured for every variant.",
        "",
        "| checkpoint | world input | held-out ep / frames | MSE (norm) | L1 (norm) | MSE (raw) | first-step MSE (norm) "
        "| world top-1 avg | top-5 avg | copy top-1 | bigram top-1 | random | shuffle | mask |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in res["checkpoints"]:
        a, w, cor = c["action"], c["world"], c["corruption"]["modes"]
        wcols = (
            [
                _f(w["avg"]["top1"], 3),
                _f(w["avg"]["top5"], 3),
                _f(w["avg"]["copy"], 3),
                _f(w["avg"]["bigram_top1"], 3),
            ]
            if w
            else ["—"] * 4
        )
        L.append(
            "| "
            + " | ".join(
                [
                    f"{c['name']}",
                    "yes" if c["uses_world_input"] else "no",
                    f"{a['n_episodes']} / {a['n_frames']}",
                    _ci(a["normalized"]["mse"]),
                    _ci(a["normalized"]["l1"]),
                    _f(a["raw"]["mse"]["value"]),
                    _f(a["normalized"]["first_step_mse"]["value"]),
                    *wcols,
                    *[_f(cor[m]["ratio"], 4) for m in MODES],
                ]
            )
            + " |"
        )
    L.append("")

    for c in res["checkpoints"]:
        a, w, cor = c["action"], c["world"], c["corruption"]
        t = c["timing"]
        L += [
            f"## {c['name']}",
            "",
            f"- checkpoint: `{c['path']}` (variant `{c['variant']}`, chunk {c['chunk_size']}, trained "
            f"{c['training']['steps']} steps, seed {c['training']['seed']})",
            f"- held-out episodes (training run's eval_split={c['split']['eval_split']}, "
            f"{c['split']['n_train_episodes']} training episodes): {c['split']['heldout_episodes']}",
            f"- scored: {a['n_frames']} frames, {a['n_chunk_steps']} non-padded chunk steps",
        ]
        if c["world_tokens"]:
            L.append(f"- world-token table: `{c['world_tokens']}`")
        L += ["", "### Action error", "", "| | normalized | raw |", "|---|---|---|"]
        for key, label in (
            ("mse", "MSE (chunk)"),
            ("l1", "L1 (chunk)"),
            ("first_step_mse", "MSE (first step)"),
            ("first_step_l1", "L1 (first step)"),
        ):
            L.append(f"| {label} | {_ci(a['normalized'][key])} | {_ci(a['raw'][key])} |")
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
                "| k | pairs | top-1 [95% CI] | top-5 | copy top-1 | bigram top-1 | bigram top-5 | top-1 − copy |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for r in w["per_k"]:
                gap = None if r["top1"] is None or r["copy"] is None else r["top1"] - r["copy"]
                L.append(
                    f"| {r['k']} | {r['n']} | {_ci({'value': r['top1'], 'ci95': r['top1_ci95']}, 3)} | {_f(r['top5'], 3)} | "
                    f"{_f(r['copy'], 3)} | {_f(r['bigram_top1'], 3)} | {_f(r['bigram_top5'], 3)} | {_f(gap, 3)} |"
                )
            av = w["avg"]
            gap = None if av["top1"] is None or av["copy"] is None else av["top1"] - av["copy"]
            L.append(
                f"| avg | | {_ci({'value': av['top1'], 'ci95': av['top1_ci95']}, 3)} | {_f(av['top5'], 3)} | {_f(av['copy'], 3)} | "
                f"{_f(av['bigram_top1'], 3)} | {_f(av['bigram_top5'], 3)} | {_f(gap, 3)} |"
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
        for m in MODES:
            r = cor["modes"][m]
            L.append(
                f"| {m} | {_f(r['mse'])} | {_ci({'value': r['ratio'], 'ci95': r['ratio_ci95']})} | "
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


# ----------------------------------------------------------------------------------------------------
# output and CLI
# ----------------------------------------------------------------------------------------------------


def write_outputs(out: Path, results: dict, markdown: str) -> None:
    """Write both files to a private temp dir beside/inside ``out`` and move them into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".eval_offline-", dir=out if out.is_dir() else out.parent))
    try:
        (tmp / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        (tmp / "results.md").write_text(markdown)
        if not out.exists():
            tmp.rename(out)
            return
        for name in RESULT_FILES:  # replace earlier results (checked by _check_output_dir)
            os.replace(tmp / name, out / name)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


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
    import draccus

    argv = list(sys.argv[1:] if argv is None else argv)
    command = "lerobot-world eval-offline " + shlex.join(argv)
    cfg = draccus.parse(EvalOfflineConfig, args=_merge_policy_paths(argv))
    try:
        out = run(cfg, command)
    except EvalOfflineError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"eval-offline results written to {out / 'results.json'} and {out / 'results.md'}")


if __name__ == "__main__":
    main()
