"""eval-offline's scoring of one checkpoint: per-frame sums filled batch by batch, then metrics.

``CheckpointEval`` runs the clean and corrupted forwards on each batch; its ``results`` turns the
sums into action errors, world-token accuracies and corruption ratios with 95% intervals from the
episode bootstrap of ``lerobot_world.stats`` (held-out episodes resampled within their task; one
checkpoint is one seed). Below ``stats.MIN_UNITS`` resampled episodes no interval is given
(``ci95`` None, ``intervals.too_small`` True). ``per_episode`` keeps each held-out episode's sums, so
the report can pair two arms on the same held-out frames and pool seeds hierarchically.
"""

import math
import time
from pathlib import Path

import numpy as np

from lerobot_world.offline.checkpoints import (
    Checkpoint,
    EvalOfflineError,
    check_dataset_has_policy_inputs,
    heldout_split,
)
from lerobot_world.policy.precision import policy_autocast
from lerobot_world.stats import (
    MIN_UNITS,
    TOO_SMALL,
    hierarchical_weights,
    ratio,
    ratio_ci,
    resampled_units,
    too_small,
)
from lerobot_world.vocabulary import CORRUPTIONS

# ----------------------------------------------------------------------------------------------------
# one checkpoint: per-frame accumulators filled batch by batch
# ----------------------------------------------------------------------------------------------------


class CheckpointEval:
    """A loaded checkpoint (policy + saved processors) and the per-frame sums of everything it scores."""

    def __init__(self, ckpt: Checkpoint, meta, device: str, world_tokens: str | None = None,
                 eval_split: float | None = None):
        """world_tokens: a token table replacing the one the checkpoint names (--world_tokens); eval_split: the
        held-out fraction when the checkpoint's training config does not record it (--eval_split)."""
        import torch
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.factory import make_policy, make_pre_post_processors

        import lerobot_world.policy.configuration_world_vla  # noqa: F401  (registers the world_vla config type)

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
        if world_tokens:
            cfg.world_tokens = str(Path(world_tokens).expanduser().resolve())
        check_dataset_has_policy_inputs(cfg, meta, ckpt.path)
        if cfg.predicts_world and (not cfg.world_tokens or not Path(cfg.world_tokens).is_dir()):
            raise EvalOfflineError(
                f"the world-token table of {ckpt.path} ({cfg.world_tokens}) does not exist here; pass "
                "--world_tokens=DIR with the table it was trained on"
            )
        self.split = heldout_split(ckpt, meta, eval_split)
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
        self.max_abs_diff = {m: 0.0 for m in CORRUPTIONS}
        self.forward_s = 0.0
        self.n_forwards = 0

    def _capture(self, module, inputs, output):
        """World logits of the forward that just ran (the model returns (actions, logits, vae))."""
        self._logits = output[1]

    def start(self, seed: int) -> None:
        """Fresh state for a deterministic pass: policy reset, corruption RNG seeded, sums cleared."""
        self.policy.reset()
        reseed = getattr(self.policy, "reseed_world_corruption", None)  # world_vla only; ACT has no world input
        if reseed is not None:
            reseed(seed)
        self.policy.world_corruption = None
        self.rows = {}
        self.max_abs_diff = {m: 0.0 for m in CORRUPTIONS}
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
        with policy_autocast(self.cfg, self.device):
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
        if "task_index" in batch:
            self._add("task", batch["task_index"].reshape(-1))
        self._add("n_steps", (~pad).sum(1))
        self._add("first_ok", (~pad[:, 0]).long())

        world = None
        if self.predicts_world:
            _, targets, valid = self.policy.gather_world(b)
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

        for mode in CORRUPTIONS:
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

        # Task of each held-out episode (the bootstrap's strata), when the dataset has task_index.
        tasks = None
        if "task" in cat:
            task = np.full(len(eps), -1, dtype=np.int64)
            task[pos] = cat["task"].astype(np.int64)
            tasks = [int(t) for t in task]
        one_seed = [0] * len(eps)  # one checkpoint = one training seed: the episode bootstrap
        small = too_small(one_seed, tasks)
        W = None if small else hierarchical_weights(one_seed, tasks, n_bootstrap, seed)
        intervals = {
            "unit": "held-out episode",
            "strata": "task_index" if tasks is not None else None,
            "method": "percentile bootstrap of held-out episodes within task (stats.hierarchical_weights, one seed)",
            "n_units": len(eps),
            "n_resampled_units": resampled_units(one_seed, tasks),
            "min_units": MIN_UNITS,
            "too_small": small,
            "note": TOO_SMALL if small else None,
        }
        n_dim = cat["n_se_dim"].shape[1]
        steps = per_ep(cat["n_steps"])  # non-padded chunk steps per episode
        first = per_ep(cat["first_ok"])

        def metric(num_frames, den_ep):
            num = per_ep(num_frames)
            return {"value": ratio(num, den_ep), "ci95": ratio_ci(num, den_ep, W)}

        def units(prefix):
            se_dim, ae_dim = per_ep(cat[f"{prefix}_se_dim"]), per_ep(cat[f"{prefix}_ae_dim"])
            return {
                "mse": {
                    "value": ratio(se_dim.sum(1), steps * n_dim),
                    "ci95": ratio_ci(se_dim.sum(1), steps * n_dim, W),
                },
                "l1": {
                    "value": ratio(ae_dim.sum(1), steps * n_dim),
                    "ci95": ratio_ci(ae_dim.sum(1), steps * n_dim, W),
                },
                "first_step_mse": metric(cat[f"{prefix}_se_first"].sum(1), first * n_dim),
                "first_step_l1": metric(cat[f"{prefix}_ae_first"].sum(1), first * n_dim),
                "per_dim": {
                    "names": action_names,
                    "mse": [ratio(se_dim[:, d], steps) for d in range(n_dim)],
                    "l1": [ratio(ae_dim[:, d], steps) for d in range(n_dim)],
                    "mse_ci95": [ratio_ci(se_dim[:, d], steps, W) for d in range(n_dim)],
                },
            }

        out = {
            "n_frames": len(episodes),
            "n_episodes": len(eps),
            "n_chunk_steps": int(steps.sum()),
            "n_action_dims": int(n_dim),
            "normalized": units("n"),
            "raw": units("r"),
        }

        # corruption: the same predict_action_chunk call with policy.world_corruption set
        clean_se = per_ep(cat["clean_se"])
        den = steps * n_dim
        corruption = {
            "uses_world_input": bool(self.cfg.uses_world_input),
            "clean_mse": ratio(clean_se, den),
            "modes": {},
        }
        mode_se = {}
        for mode in CORRUPTIONS:
            se = mode_se[mode] = per_ep(cat[f"{mode}_se"])
            corruption["modes"][mode] = {
                "mse": ratio(se, den),
                "ratio": ratio(se, clean_se),
                "ratio_ci95": ratio_ci(se, clean_se, W),
                "max_abs_action_change": self.max_abs_diff[mode],
            }

        world = None
        if self.predicts_world:
            world = self._world_results(cat, per_ep, W)
            for mode in CORRUPTIONS:
                hits = per_ep(cat[f"w_{mode}_top1"]).sum(1)
                corruption["modes"][mode]["world_top1"] = ratio(hits, per_ep(cat["w_valid"]).sum(1))
            corruption["clean_world_top1"] = world["pooled"]["top1"]

        # Per held-out episode: the sums a report needs to pair arms on the same frames and to pool seeds.
        n_frames_ep = per_ep(np.ones(len(episodes)))
        per_episode = []
        world_ep = self._world_per_episode(cat, per_ep) if self.predicts_world else None
        for i, e in enumerate(eps):
            rec = {
                "episode_index": int(e),
                "task_index": tasks[i] if tasks is not None else None,
                "n_frames": int(n_frames_ep[i]),
                "n_chunk_steps": int(steps[i]),
                "n_values": int(steps[i]) * int(n_dim),  # normalized MSE of the episode = se_sum / n_values
                "se_sum": float(clean_se[i]),
                "corrupted_se_sum": {m: float(mode_se[m][i]) for m in CORRUPTIONS},
                "world": None if world_ep is None else {k: v[i].astype(int).tolist() for k, v in world_ep.items()},
            }
            per_episode.append(rec)
        return {
            "action": out,
            "world": world,
            "corruption": corruption,
            "intervals": intervals,
            "per_episode": per_episode,
        }

    @staticmethod
    def _world_per_episode(cat, per_ep) -> dict[str, np.ndarray]:
        """Per-episode, per-k world counts (E, K): all valid pairs, copy hits, model hits, and the same on the
        changed pairs (w_{t+k} != w_t; the copy baseline is 0 there by definition)."""
        valid, copy = cat["w_valid"], cat["w_copy"]
        changed = valid * (1 - copy)
        top1, top5 = cat["w_clean_top1"], cat["w_clean_top5"]
        return {
            "valid": per_ep(valid),
            "copy": per_ep(copy),
            "top1": per_ep(top1),
            "top5": per_ep(top5),
            "changed": per_ep(changed),
            "top1_changed": per_ep(top1 * changed),
            "top5_changed": per_ep(top5 * changed),
        }

    def _world_results(self, cat, per_ep, W) -> dict:
        from lerobot_world.tokens.table import token_stats

        ep = self._world_per_episode(cat, per_ep)
        valid, top1, top5, copy = ep["valid"], ep["top1"], ep["top5"], ep["copy"]  # (E, K)
        changed, top1_c, top5_c = ep["changed"], ep["top1_changed"], ep["top5_changed"]
        copy_changed = per_ep(cat["w_copy"] * cat["w_valid"] * (1 - cat["w_copy"]))  # identically 0: measured
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
                    "top1": ratio(top1[:, i], valid[:, i]),
                    "top1_ci95": ratio_ci(top1[:, i], valid[:, i], W),
                    "top5": ratio(top5[:, i], valid[:, i]),
                    "copy": ratio(copy[:, i], valid[:, i]),
                    "bigram_top1": base.get("bigram_top1"),
                    "bigram_top5": base.get("bigram_top5"),
                    "copy_token_stats": base.get("copy"),
                    # changed pairs (w_{t+k} != w_t): what copying cannot fake
                    "n_changed": int(changed[:, i].sum()),
                    "top1_changed": ratio(top1_c[:, i], changed[:, i]),
                    "top1_changed_ci95": ratio_ci(top1_c[:, i], changed[:, i], W),
                    "top5_changed": ratio(top5_c[:, i], changed[:, i]),
                    "copy_changed": ratio(copy_changed[:, i], changed[:, i]),
                }
            )

        def avg(key):
            vals = [r[key] for r in per_k if r[key] is not None]
            return float(np.mean(vals)) if len(vals) == len(per_k) and vals else None

        def avg_ci(hits, den):
            """Bootstrap of the mean over k of per-k accuracies (each horizon counts once)."""
            ks = [i for i in range(self.K) if den[:, i].sum() > 0]
            if W is None or len(ks) != self.K or not ks:
                return None
            acc = np.stack([(W @ hits[:, i]) / np.maximum(W @ den[:, i], 1) for i in ks], 1).mean(1)
            return [float(x) for x in np.percentile(acc, [2.5, 97.5])]

        table_split = (sorted(self.table.train_episodes), sorted(self.table.heldout_episodes))
        return {
            "K": self.K,
            "vocab_size": int(self.table.vocab_size),
            "table": str(self.table.path),
            "per_k": per_k,
            "avg": {
                "top1": avg("top1"),
                "top1_ci95": avg_ci(top1, valid),
                "top5": avg("top5"),
                "copy": avg("copy"),
                "bigram_top1": avg("bigram_top1"),
                "bigram_top5": avg("bigram_top5"),
                "top1_changed": avg("top1_changed"),
                "top1_changed_ci95": avg_ci(top1_c, changed),
                "top5_changed": avg("top5_changed"),
                "copy_changed": avg("copy_changed"),
            },
            "pooled": {
                "top1": ratio(top1, valid),
                "top5": ratio(top5, valid),
                "copy": ratio(copy, valid),
                "n_changed": int(changed.sum()),
                "top1_changed": ratio(top1_c, changed),
                "top5_changed": ratio(top5_c, changed),
            },
            "baselines": (
                "copy: P(w_t = w_{t+k}) on the same held-out (t, t+k) pairs the model is scored on; bigram: most "
                "frequent successor at distance k counted on this run's training episodes (token_stats); changed "
                "pairs: only the pairs with w_{t+k} != w_t, where the copy baseline is 0 by definition"
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
