"""eval-offline's scoring of one checkpoint: per-frame sums filled batch by batch, then metrics.

``CheckpointEval`` runs the clean and corrupted forwards on each batch; its ``results`` turns the
sums into action errors, world-token accuracies and corruption ratios with episode-bootstrap intervals.
"""

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lerobot_world.offline_checkpoints import (
    Checkpoint,
    EvalOfflineError,
    check_dataset_has_policy_inputs,
    heldout_split,
)

if TYPE_CHECKING:
    from lerobot_world.eval_offline import EvalOfflineConfig

MODES = ("random", "shuffle", "mask")


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

    def __init__(self, ckpt: Checkpoint, run_cfg: "EvalOfflineConfig", meta, device: str):
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
