"""`lerobot-world token-agreement`: do live world tokens equal the table's tokens for the same states?

    lerobot-world token-agreement --dataset.repo_id=local/libero_demo --dataset.root=data/libero_demo \\
        --world_tokens=tables/libero_demo_v32 [--episodes=[0,1]] [--output_dir=DIR] \\
        [--policy.path=CHECKPOINT [--device=cpu]]

A world-token table (``lerobot-world tokenize``) is computed from frames *decoded* from the
dataset (for video datasets: lossy h264/yuv420p); in closed loop the policy tokenizes the *live*
rendered frame. This command measures whether the two agree for the same simulator states.

For each chosen episode of a dataset recorded by ``lerobot-world demos`` (its ``results.json``
gives the suite, image size, init mode, and per episode the task, LIBERO init state and seed), it
rebuilds the env exactly as the recorder did (:class:`eval_sim.demos.LeRobotLiberoRecorder`:
LeRobot's ``LiberoEnv`` -> ``preprocess_observation`` -> LIBERO env processor, which is also what a
policy sees in ``lerobot-world eval-sim``), replays the dataset's recorded actions step by step,
and for every frame compares:

- the live token (the table's own tokenizer on the live ``image_key`` frame) with the table token;
- the decoded dataset frame re-tokenized with the same tokenizer (must equal the table: a check
  that the table belongs to these frames and that decoding is deterministic);
- max |live ``observation.state`` - recorded ``observation.state``| (does the replay reproduce the
  recorded states?) and mean |live pixel - decoded pixel| of the tokenized camera (0..255 units).

With ``--policy.path=CHECKPOINT`` (a world_vla checkpoint that predicts world tokens: variant B, C
or C_no_world_input, trained with this very table), the same replay also feeds every live observation
to the policy through its own saved preprocessor and ``select_action`` (loaded with
``eval_sim.evaluate.load_policy``, exactly as ``lerobot-world eval-sim`` does) while the *recorded*
actions are executed; its actions are discarded. Its world predictions are scored as in eval-sim (the
token predicted at step t for t+k vs the token observed at t+k, beside the copy baseline on the same
pairs): world prediction along the demonstrated states, which separates the world model's accuracy
from the policy's own trajectories in eval-sim.

Writes ``results.json`` and ``results.md`` (to a temp dir, then moved into ``--output_dir``) and
prints a one-paragraph summary. Bad input is one sentence on stderr and exit code 2, nothing written.
"""

import dataclasses
import datetime as dt
import json
import os
import shlex
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lerobot_world.splits import DatasetArgs

DEFAULT_FIRST_N = 2
TOP_PAIRS = 10


POLICY_NOTE = (
    "world prediction along the demonstrated states (the policy observes every replayed frame while the recorded "
    "actions are executed) separates the world model's accuracy from the policy's own trajectories in eval-sim"
)


class TokenAgreementError(ValueError):
    """Bad input; one sentence naming the bad value and what was expected."""


@dataclass
class PolicyArgs:
    # A world_vla checkpoint (variant B, C or C_no_world_input, trained with --world_tokens) that observes
    # the replay and predicts world tokens; None: tokens only.
    path: str | None = None


@dataclass
class TokenAgreementConfig:
    # The demonstrations dataset (recorded by `lerobot-world demos`: results.json in its root).
    dataset: DatasetArgs = field(default_factory=DatasetArgs)
    # World-token table directory of this dataset (`lerobot-world tokenize --output_dir`).
    world_tokens: str | None = None
    # Dataset episode indices to replay, e.g. [0,1]; None: the first `first_n` episodes.
    episodes: list[int] | None = None
    first_n: int = DEFAULT_FIRST_N
    # Where results.json and results.md go; None: outputs/token_agreement/<date>/<time>_<repo>.
    output_dir: Path | None = None
    # Replace an existing non-empty output_dir.
    overwrite: bool = False
    # LeRobot video backend used to decode the dataset frames (None = LeRobot's default, as in tokenize).
    video_backend: str | None = None
    # Optional world_vla policy observing the replay (--policy.path=CHECKPOINT).
    policy: PolicyArgs = field(default_factory=PolicyArgs)
    # Torch device for --policy.path; None: cuda if available, else cpu (as eval-sim).
    device: str | None = None


# --------------------------------------------------------------------------------------------------
# Comparison and summary (pure functions: no simulator)
# --------------------------------------------------------------------------------------------------


def compare_episode(
    table_tokens, live_tokens, decoded_tokens, live_states, recorded_states, live_pixels, decoded_pixels
) -> dict:
    """One episode's numbers. Tokens are int sequences [T]; states float [T, S]; pixels uint8-valued [T, ...]."""
    table = np.asarray(table_tokens, dtype=np.int64)
    live = np.asarray(live_tokens, dtype=np.int64)
    dec = np.asarray(decoded_tokens, dtype=np.int64)
    if not (len(table) == len(live) == len(dec) == len(live_states) == len(recorded_states) == len(live_pixels) == len(decoded_pixels)):
        raise ValueError("compare_episode: every per-frame sequence must have the same length")
    n = len(table)
    same = live == table
    mism = np.flatnonzero(~same)
    # A mismatch whose live token is the table token of the previous or next frame: a frame near a
    # codebook boundary that the live image crossed one step early or late.
    adjacent = sum(
        1 for t in mism if (t > 0 and live[t] == table[t - 1]) or (t + 1 < n and live[t] == table[t + 1])
    )
    ds = np.abs(np.asarray(live_states, dtype=np.float64) - np.asarray(recorded_states, dtype=np.float64))
    dp = np.abs(np.asarray(live_pixels, dtype=np.float64) - np.asarray(decoded_pixels, dtype=np.float64))
    per_frame_pix = dp.reshape(n, -1).mean(1) if n else np.zeros(0)
    return {
        "frames": n,
        "agree": int(same.sum()),
        "agreement": float(same.mean()) if n else None,
        "mismatches": [[int(t), int(table[t]), int(live[t])] for t in mism],  # [frame_index, table, live]
        "mismatch_adjacent": int(adjacent),
        "first_mismatch": int(mism[0]) if len(mism) else None,
        "decoded_agree": int((dec == table).sum()),
        "state_max_abs_err": float(ds.max()) if ds.size else 0.0,
        "pixel_mean_abs_diff": float(dp.mean()) if dp.size else 0.0,
        "pixel_max_abs_diff": float(dp.max()) if dp.size else 0.0,
        "pixel_identical_frames": int((per_frame_pix == 0).sum()),
    }


def summarize(episodes: list[dict], top_k: int = TOP_PAIRS) -> dict:
    """Overall numbers from ``compare_episode`` results (each with ``episode_index`` added)."""
    frames = sum(e["frames"] for e in episodes)
    agree = sum(e["agree"] for e in episodes)
    pairs = Counter((tab, live) for e in episodes for _, tab, live in e["mismatches"])
    n_mis = frames - agree
    return {
        "episodes": len(episodes),
        "frames": frames,
        "agree": agree,
        "agreement": agree / frames if frames else None,
        "mismatches": n_mis,
        "mismatch_adjacent": sum(e["mismatch_adjacent"] for e in episodes),
        "distinct_mismatch_pairs": len(pairs),
        "top_pairs": [{"table": int(a), "live": int(b), "count": int(c)} for (a, b), c in pairs.most_common(top_k)],
        "decoded_agree": sum(e["decoded_agree"] for e in episodes),
        "decoded_agreement": sum(e["decoded_agree"] for e in episodes) / frames if frames else None,
        "state_max_abs_err": max((e["state_max_abs_err"] for e in episodes), default=0.0),
        # frame-weighted mean over episodes = mean over all pixels (same image size everywhere)
        "pixel_mean_abs_diff": (sum(e["pixel_mean_abs_diff"] * e["frames"] for e in episodes) / frames) if frames else 0.0,
        "pixel_max_abs_diff": max((e["pixel_max_abs_diff"] for e in episodes), default=0.0),
        "pixel_identical_frames": sum(e["pixel_identical_frames"] for e in episodes),
    }


def world_summary(correct, copy_correct, count) -> dict:
    """Per-k world accuracy and copy baseline (same pairs) from hit counts [K], and both means over the
    horizons that have pairs (as eval-sim's report averages them: the two means cover the same k)."""
    correct, copy_correct, count = (np.asarray(x, dtype=np.int64) for x in (correct, copy_correct, count))
    if not (correct.shape == copy_correct.shape == count.shape) or correct.ndim != 1:
        raise ValueError("world_summary: correct, copy_correct and count must be 1-d arrays of the same length K")
    ks = [i for i in range(len(count)) if count[i] > 0]
    acc = {str(i + 1): (float(correct[i] / count[i]) if count[i] else None) for i in range(len(count))}
    copy = {str(i + 1): (float(copy_correct[i] / count[i]) if count[i] else None) for i in range(len(count))}
    return {
        "correct": correct.tolist(),
        "copy_correct": copy_correct.tolist(),
        "count": count.tolist(),
        "world_accuracy": acc,
        "world_copy_baseline": copy,
        "mean": float(np.mean([acc[str(i + 1)] for i in ks])) if ks else None,
        "copy_mean": float(np.mean([copy[str(i + 1)] for i in ks])) if ks else None,
        "pairs": int(count.sum()),
    }


def pool_world(records: list[dict]) -> dict:
    """Overall policy numbers: hit counts summed over episodes (pairs pooled), then ``world_summary``."""
    if not records:
        raise ValueError("pool_world: no episodes")
    keys = ("correct", "copy_correct", "count")
    sums = [np.sum([np.asarray(r[k], dtype=np.int64) for r in records], axis=0) for k in keys]
    return world_summary(*sums) | {
        "n_predictions": sum(r["n_predictions"] for r in records),
        "observed_equals_live": sum(r["observed_equals_live"] for r in records),
        "frames": sum(r["frames"] for r in records),
    }


def _f(x, nd=4):
    return "-" if x is None else f"{x:.{nd}f}"


def _policy_sentence(r: dict) -> str:
    pol, o = r.get("policy"), r["overall"].get("policy")
    if not pol or not o:
        return ""
    return (
        f" World prediction along the demonstrated states (policy {pol['variant']} at {pol['path']} observes every "
        f"replayed frame while the recorded actions are executed): accuracy {_f(o['mean'], 3)} averaged over "
        f"k=1..{pol['future_offset']} vs copy baseline {_f(o['copy_mean'], 3)} on the same {o['pairs']} (t, t+k) pairs "
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
            f"{_f(e['agreement'])} | {len(e['mismatches'])} ({e['mismatch_adjacent']}) | "
            f"{'-' if e['first_mismatch'] is None else e['first_mismatch']} | {e['decoded_agree']} | "
            f"{e['state_max_abs_err']:.3g} | {e['pixel_mean_abs_diff']:.3f} | {e['pixel_max_abs_diff']:.0f} |"
        )
    lines.append(
        f"| all | | | | {o['frames']} | {o['agree']} | {_f(o['agreement'])} | {o['mismatches']} ({o['mismatch_adjacent']}) "
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
            f"| {name} | {split} | model | " + " | ".join(_f(w["world_accuracy"][k], 3) for k in ks) + f" | {_f(w['mean'], 3)} |",
            f"| {name} | {split} | copy | " + " | ".join(_f(w["world_copy_baseline"][k], 3) for k in ks)
            + f" | {_f(w['copy_mean'], 3)} |",
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


# --------------------------------------------------------------------------------------------------
# Inputs: validated before anything is simulated or written
# --------------------------------------------------------------------------------------------------


@dataclass
class Inputs:
    meta: object  # LeRobotDatasetMetadata
    table: object  # WorldTokenTable
    demos: dict  # results.json of `lerobot-world demos`
    episodes: list[dict]  # per chosen dataset episode: episode_index, task_id, init_id, seed, steps, task, from, to
    out: Path
    policy_cfg: object = None  # the --policy.path checkpoint's config (WorldVLAConfig), checked against the table


def check_policy_config(pcfg, table, policy_path: str, world_tokens: str) -> None:
    """The checkpoint must be world_vla, predict world tokens, and have been trained with this very table."""
    ptype = getattr(pcfg, "type", None)
    if ptype != "world_vla":
        raise TokenAgreementError(
            f"--policy.path={policy_path} is a {ptype!r} policy; expected a world_vla checkpoint that predicts world "
            "tokens (variant B, C or C_no_world_input)"
        )
    if not pcfg.predicts_world:
        raise TokenAgreementError(
            f"--policy.path={policy_path} is world_vla variant {pcfg.variant!r}, which does not predict world tokens; "
            "expected variant B, C or C_no_world_input"
        )
    from lerobot_world.token_table import SPEC_FILE

    diffs = []
    if pcfg.world_table_fingerprint != table.fingerprint:
        diffs.append(f"dataset fingerprint {str(pcfg.world_table_fingerprint)[:12]} vs {str(table.fingerprint)[:12]}")
    try:
        spec = json.loads(pcfg.world_tokenizer_spec) if pcfg.world_tokenizer_spec else None
    except json.JSONDecodeError:
        spec = None
    table_spec = json.loads((Path(table.path) / SPEC_FILE).read_text())
    if spec != table_spec:
        diffs.append(f"tokenizer spec {pcfg.world_tokenizer_spec} vs {json.dumps(table_spec, sort_keys=True)}")
    if pcfg.world_vocab_size != table.vocab_size:
        diffs.append(f"vocab size {pcfg.world_vocab_size} vs {table.vocab_size}")
    if pcfg.world_image_key != table.meta.get("image_key"):
        diffs.append(f"camera {pcfg.world_image_key!r} vs {table.meta.get('image_key')!r}")
    if diffs:
        raise TokenAgreementError(
            f"--policy.path={policy_path} was trained with another world-token table than --world_tokens={world_tokens} "
            f"({'; '.join(diffs)}); expected a checkpoint trained with --policy.world_tokens={world_tokens}"
        )


def check_tokenizer_state(policy_tokenizer, table_tokenizer, policy_path: str, world_tokens: str) -> None:
    """The checkpoint's world tokenizer (encoder + codebook, saved in its model.safetensors) must equal the table's."""
    import torch

    a, b = policy_tokenizer.state_dict(), table_tokenizer.state_dict()
    diff = sorted(set(a) ^ set(b)) or [
        k for k in a if a[k].shape != b[k].shape or not torch.equal(a[k].detach().cpu(), b[k].detach().cpu())
    ]
    if diff:
        raise TokenAgreementError(
            f"--policy.path={policy_path}: its world tokenizer's weights differ from --world_tokens={world_tokens}'s "
            f"({diff[0]}{f' and {len(diff) - 1} more' if len(diff) > 1 else ''}); expected a checkpoint trained with "
            "this table"
        )


def _validate_policy(cfg: TokenAgreementConfig, table, meta, demos: dict, episodes: list[dict]):
    """The --policy.path checkpoint's config, checked before anything is loaded or simulated."""
    from eval_sim.evaluate import EvalSimError, load_policy_config, policy_image_size

    path = cfg.policy.path
    try:
        pcfg = load_policy_config(path)
    except EvalSimError as e:
        raise TokenAgreementError(str(e).rstrip(".")) from None
    check_policy_config(pcfg, table, path, cfg.world_tokens)
    size = int(demos["config"]["image_size"])
    psize = policy_image_size(pcfg)
    if psize is not None and tuple(psize) != (size, size):
        raise TokenAgreementError(
            f"--policy.path={path} takes {psize[0]}x{psize[1]} images but the demos were recorded at {size}x{size}; "
            "expected a checkpoint trained on this dataset"
        )
    missing = sorted(set(pcfg.image_features) - set(meta.camera_keys))
    if missing:
        raise TokenAgreementError(
            f"--policy.path={path} needs camera(s) {missing} that dataset {cfg.dataset.repo_id} lacks; "
            f"expected a checkpoint trained on this dataset ({list(meta.camera_keys)})"
        )
    unknown = sorted({e["task"] for e in episodes} - set(pcfg.tasks)) if pcfg.tasks else []
    if unknown:
        raise TokenAgreementError(
            f"--policy.path={path} was not trained on task {unknown[0]!r} of the chosen episodes; "
            "expected a checkpoint trained on this dataset"
        )
    return pcfg


def _load_demos_results(root: Path) -> dict:
    path = root / "results.json"
    if not path.is_file():
        raise TokenAgreementError(
            f"--dataset.root={root} has no results.json; expected a dataset recorded by `lerobot-world demos` "
            "(its results.json gives each episode's task, init state and seed)"
        )
    try:
        res = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise TokenAgreementError(f"{path} is not valid JSON ({e}); expected the results.json of `lerobot-world demos`") from None
    cfg = res.get("config") if isinstance(res, dict) else None
    if (not isinstance(cfg, dict) or not isinstance(res.get("episodes"), list) or "dataset" not in res
            or not {"suite", "image_size", "init"} <= set(cfg)):
        raise TokenAgreementError(
            f"{path} is not the results.json of a recorded `lerobot-world demos` dataset (it lacks config/episodes/dataset); "
            "expected a dataset recorded with --record=true"
        )
    return res


def _dataset_episodes(demos: dict, meta, results_path: Path) -> list[dict]:
    """Dataset episode e <-> the e-th successful record of results.json (demos writes only those, in order)."""
    kept = [r for r in demos["episodes"] if r.get("success")]
    n = int(meta.total_episodes)
    if len(kept) != n:
        raise TokenAgreementError(
            f"{results_path} lists {len(kept)} recorded (successful) episodes but the dataset has {n}; "
            "expected the results.json written together with this dataset"
        )
    lengths = [int(x) for x in meta.episodes["length"]]
    starts = [int(x) for x in meta.episodes["dataset_from_index"]]
    tasks = [t[0] if t else "" for t in meta.episodes["tasks"]]
    out = []
    for e, r in enumerate(kept):
        if int(r["steps"]) != lengths[e] or (r.get("task") is not None and r["task"] != tasks[e]):
            raise TokenAgreementError(
                f"{results_path}: episode {e} has {r['steps']} steps / task {r.get('task')!r} there but {lengths[e]} frames / "
                f"task {tasks[e]!r} in the dataset; expected the results.json written together with this dataset"
            )
        out.append({"episode_index": e, "task_id": int(r["task_id"]), "init_id": r.get("init_id"), "seed": int(r["seed"]),
                    "steps": lengths[e], "task": tasks[e], "from": starts[e], "to": starts[e] + lengths[e]})
    return out


def _default_output_dir(repo_id: str) -> Path:
    now = dt.datetime.now()
    return Path("outputs/token_agreement") / f"{now:%Y-%m-%d}" / f"{now:%H-%M-%S}_{repo_id.replace('/', '-')}"


def validate(cfg: TokenAgreementConfig) -> Inputs:
    from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata

    from lerobot_world.token_table import WorldTokenTable

    if cfg.world_tokens is None:
        raise TokenAgreementError("--world_tokens is required: the world-token table directory of this dataset (`lerobot-world tokenize`)")
    if cfg.dataset.root is None:
        raise TokenAgreementError("--dataset.root is required: the directory of a dataset recorded by `lerobot-world demos`")
    if cfg.first_n < 1:
        raise TokenAgreementError(f"--first_n={cfg.first_n}; expected a positive integer")
    root = Path(cfg.dataset.root).expanduser()
    if not (root / "meta" / "info.json").is_file():
        raise TokenAgreementError(f"--dataset.root={root} is not a LeRobot dataset (no meta/info.json there)")
    demos = _load_demos_results(root)
    try:
        meta = LeRobotDatasetMetadata(cfg.dataset.repo_id, root=root)
    except Exception as e:  # noqa: BLE001
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TokenAgreementError(f"could not open dataset {cfg.dataset.repo_id!r} at {root} ({first})") from None
    try:
        table = WorldTokenTable.load(cfg.world_tokens)
    except ValueError as e:
        raise TokenAgreementError(f"--world_tokens={cfg.world_tokens}: {e}") from None
    image_key = table.meta.get("image_key")
    if image_key not in meta.camera_keys:
        raise TokenAgreementError(
            f"--world_tokens={cfg.world_tokens} tokenizes camera {image_key!r}, which dataset {cfg.dataset.repo_id} lacks; "
            f"expected one of {list(meta.camera_keys)}"
        )
    try:
        table.check_matches(meta)
    except ValueError as e:
        raise TokenAgreementError(f"--world_tokens: {e}") from None
    all_eps = _dataset_episodes(demos, meta, root / "results.json")
    n = len(all_eps)
    chosen = list(range(min(cfg.first_n, n))) if cfg.episodes is None else [int(e) for e in cfg.episodes]
    bad = [e for e in chosen if not 0 <= e < n]
    if not chosen or bad:
        raise TokenAgreementError(
            f"--episodes={cfg.episodes}: episode {bad[0] if bad else '(none)'} is not in dataset {cfg.dataset.repo_id}; "
            f"expected a non-empty list of indices in 0..{n - 1}"
        )
    if len(set(chosen)) != len(chosen):
        raise TokenAgreementError(f"--episodes={cfg.episodes} repeats an episode; expected distinct indices in 0..{n - 1}")
    out = Path(cfg.output_dir) if cfg.output_dir is not None else _default_output_dir(cfg.dataset.repo_id)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not cfg.overwrite:
        raise TokenAgreementError(f"--output_dir={out} already exists and is not empty; pass a new directory or --overwrite=true")
    episodes = [all_eps[e] for e in chosen]
    pcfg = _validate_policy(cfg, table, meta, demos, episodes) if cfg.policy.path else None
    return Inputs(meta=meta, table=table, demos=demos, episodes=episodes, out=out, policy_cfg=pcfg)


# --------------------------------------------------------------------------------------------------
# Replay
# --------------------------------------------------------------------------------------------------


def _to_uint8_grid(images) -> np.ndarray:
    """[T, 3, H, W] uint8 or float in [0, 1] -> uint8 (round(x * 255): the tokenizer's own 8-bit snap)."""
    import torch

    from lerobot_world.world_tokenizer import to_pixel_grid

    return to_pixel_grid(torch.as_tensor(images)).to(torch.uint8).numpy()


class PolicyObserver:
    """A loaded world_vla policy watching a replay: every live observation goes through the checkpoint's own
    preprocessor and ``select_action`` (as in eval-sim's ``_Runner.act``); its actions are discarded.
    Records the token it observed each step and its predictions (a new one per action chunk)."""

    def __init__(self, loaded):
        self.loaded = loaded
        self.policy = loaded.policy
        if hasattr(self.policy, "world_corruption"):
            self.policy.world_corruption = None
        self.horizon = int(self.policy.config.future_offset)
        self.reset()

    def reset(self) -> None:
        self.policy.reset()
        self.observed: list[int] = []
        self.predicted: dict[int, np.ndarray] = {}
        self._last = None

    def __call__(self, t: int, observation: dict) -> None:
        import torch

        batch = self.loaded.preprocessor({**observation})
        with torch.inference_mode():
            self.policy.select_action(batch)
        self.observed.append(int(self.policy.last_world_observed[0]))
        pr = self.policy.last_world_predicted
        if pr is not None and pr is not self._last:
            self.predicted[t] = pr[0].detach().cpu().numpy().astype(np.int64)
        self._last = pr

    def result(self, live_tokens) -> dict:
        """World accuracy per k + copy baseline on the policy's observed tokens (eval-sim's scoring), the
        predictions themselves ([step, [tokens for step+1..step+K]]), and how often the policy's observed token
        equals the live token of the table's tokenizer."""
        from eval_sim import metrics

        live = np.asarray(live_tokens, dtype=np.int64)
        obs = np.asarray(self.observed, dtype=np.int64)
        if obs.shape != live.shape:
            raise ValueError(f"the policy observed {len(obs)} frames but the replay had {len(live)}")
        c, cc, n = metrics.world_accuracy_counts(obs, self.predicted, self.horizon)
        return world_summary(c, cc, n) | {
            "frames": int(len(obs)),
            "n_predictions": len(self.predicted),
            "observed_equals_live": int((obs == live).sum()),
            "predictions": [[int(t), [int(x) for x in p]] for t, p in sorted(self.predicted.items())],
        }


def replay_episode(recorder, ep: dict, dataset, tokenizer, image_key: str, table_tokens, observer=None) -> dict:
    """Replay one dataset episode's actions in ``recorder``'s env; the per-frame comparison. With ``observer``
    (a :class:`PolicyObserver`), the policy sees every live observation too; its numbers go under "policy"."""
    import torch

    live_imgs, live_states, dec_imgs, rec_states, actions = [], [], [], [], []
    for i in range(ep["from"], ep["to"]):
        item = dataset[i]
        if int(item["index"]) != i or int(item["episode_index"]) != ep["episode_index"]:
            raise TokenAgreementError(f"dataset frame {i} is not frame {i - ep['from']} of episode {ep['episode_index']}")
        dec_imgs.append(item[image_key])
        rec_states.append(item["observation.state"].numpy())
        actions.append(item["action"].numpy().astype(np.float32))
    raw = recorder.reset(ep["init_id"], ep["seed"])
    if observer is not None:
        observer.reset()
    for t, action in enumerate(actions):
        obs = recorder.observation(raw)
        live_imgs.append(obs[image_key][0].detach().cpu().clone())  # float [3, H, W] in [0, 1]: what the policy gets
        live_states.append(obs["observation.state"][0].numpy().copy())
        if observer is not None:
            observer(t, obs)
        if t + 1 < len(actions):
            raw, *_ = recorder.env.step(action)
    live = torch.stack(live_imgs)
    dec = torch.stack(dec_imgs)
    if live.shape != dec.shape:
        raise TokenAgreementError(
            f"live {image_key} frames are {list(live.shape[1:])} but the dataset's are {list(dec.shape[1:])}; "
            "expected the image size recorded in results.json"
        )
    with torch.no_grad():
        live_tok = tokenizer(live).cpu().numpy()
        dec_tok = tokenizer(dec).cpu().numpy()
    r = compare_episode(
        table_tokens, live_tok, dec_tok, np.stack(live_states), np.stack(rec_states), _to_uint8_grid(live), _to_uint8_grid(dec)
    )
    if observer is not None:
        r["policy"] = observer.result(live_tok)
    return r


def _training_roles(policy_dir: Path, meta) -> dict[int, str] | None:
    """Dataset episode -> "train" / "held-out" in the checkpoint's training run (its train_config.json, LeRobot's
    eval_split rule); episodes outside the run's ``dataset.episodes`` are "unused". None when unknown."""
    from lerobot_world.splits import split_dataset

    path = Path(policy_dir) / "train_config.json"
    try:
        ds = json.loads(path.read_text()).get("dataset") or {}
        split = split_dataset(meta, float(ds.get("eval_split") or 0.0), ds.get("episodes"))
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    roles = {e: "unused" for e in range(int(meta.total_episodes))}
    return roles | {e: "train" for e in split.train} | {e: "held-out" for e in split.heldout}


def load_observer(cfg: TokenAgreementConfig, inp: Inputs, table_tokenizer) -> PolicyObserver:
    """Load --policy.path exactly as eval-sim does (``eval_sim.evaluate.load_policy``: make_policy + its saved
    processors) for a LiberoEnv at the demos' suite and image size; check its tokenizer weights against the table."""
    from lerobot.envs.configs import LiberoEnv as LiberoEnvConfig

    from eval_sim.evaluate import EvalSimError, load_policy

    dcfg = inp.demos["config"]
    size = int(dcfg["image_size"])
    env_cfg = LiberoEnvConfig(task=dcfg["suite"], task_ids=sorted({e["task_id"] for e in inp.episodes}),
                              observation_height=size, observation_width=size)
    try:
        loaded = load_policy(cfg.policy.path, env_cfg, device=cfg.device)
    except EvalSimError as e:
        raise TokenAgreementError(str(e).rstrip(".")) from None
    except Exception as e:  # noqa: BLE001 - one sentence for the user
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TokenAgreementError(f"--policy.path={cfg.policy.path} could not be loaded as a policy ({first})") from None
    tok = getattr(loaded.policy, "world_tokenizer", None)
    if tok is None:
        raise TokenAgreementError(f"--policy.path={cfg.policy.path} has no world tokenizer; expected variant B, C or C_no_world_input")
    check_tokenizer_state(tok, table_tokenizer, cfg.policy.path, cfg.world_tokens)
    return PolicyObserver(loaded)


def run(cfg: TokenAgreementConfig, argv: list[str] | None = None) -> dict:
    inp = validate(cfg)
    argv = sys.argv[1:] if argv is None else argv
    from eval_sim.demos import LeRobotLiberoRecorder
    from eval_sim.libero_assets import ensure_libero_ready

    ensure_libero_ready()
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    t0 = time.perf_counter()
    dcfg = inp.demos["config"]
    image_key = inp.table.meta["image_key"]
    tokenizer = inp.table.build_tokenizer().eval()
    observer = load_observer(cfg, inp, tokenizer) if inp.policy_cfg is not None else None
    roles = _training_roles(Path(observer.loaded.path), inp.meta) if observer is not None else None
    dataset = LeRobotDataset(cfg.dataset.repo_id, root=Path(cfg.dataset.root).expanduser(),
                             video_backend=cfg.video_backend, return_uint8=True)
    results_eps = []
    recorders: dict[int, LeRobotLiberoRecorder] = {}
    try:
        for ep in inp.episodes:
            rec = recorders.get(ep["task_id"])
            if rec is None:
                rec = recorders[ep["task_id"]] = LeRobotLiberoRecorder(
                    dcfg["suite"], ep["task_id"], int(dcfg["image_size"]), dcfg["init"], dcfg.get("max_steps"))
            te = time.perf_counter()
            tab = inp.table.tokens[ep["from"]:ep["to"]].numpy()
            r = replay_episode(rec, ep, dataset, tokenizer, image_key, tab, observer=observer)
            if observer is not None:
                r["policy"]["split"] = None if roles is None else roles.get(ep["episode_index"])
            results_eps.append({k: ep[k] for k in ("episode_index", "task_id", "init_id", "seed", "task")}
                               | r | {"seconds": round(time.perf_counter() - te, 1)})
            pol = "" if observer is None else (
                f"; policy world accuracy {_f(r['policy']['mean'], 3)} (copy {_f(r['policy']['copy_mean'], 3)}, "
                f"mean over k)")
            print(f"episode {ep['episode_index']}: {r['agree']}/{r['frames']} tokens agree, max |Δstate| "
                  f"{r['state_max_abs_err']:.3g}, mean |Δpixel| {r['pixel_mean_abs_diff']:.3f}{pol}", flush=True)
    finally:
        for rec in recorders.values():
            rec.close()
    tm = inp.table.meta
    result = {
        "command": "lerobot-world token-agreement " + shlex.join(argv),
        "created": dt.datetime.now().isoformat(timespec="seconds"),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items()},
        "dataset": {"repo_id": cfg.dataset.repo_id, "root": str(Path(cfg.dataset.root).expanduser().resolve()),
                    "total_episodes": int(inp.meta.total_episodes), "total_frames": int(inp.meta.total_frames)},
        "source": {"suite": dcfg["suite"], "image_size": int(dcfg["image_size"]), "init": dcfg["init"],
                   "use_videos": bool(dcfg.get("use_videos", True)), "max_steps": dcfg.get("max_steps"),
                   "demos_command": inp.demos.get("command")},
        "table": {"path": str(Path(cfg.world_tokens).resolve()), "encoder": tm.get("encoder"),
                  "vocab_size": int(tm["vocab_size"]), "fingerprint": tm.get("fingerprint")},
        "image_key": image_key,
        "policy": None,
        "overall": summarize(results_eps),
        "episodes": results_eps,
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    if observer is not None:
        c = observer.policy.config
        result["policy"] = {
            "path": observer.loaded.path, "type": c.type, "variant": c.variant, "future_offset": int(c.future_offset),
            "chunk_size": int(c.chunk_size), "n_action_steps": int(c.n_action_steps),
            "temporal_ensemble_coeff": c.temporal_ensemble_coeff, "world_context": int(c.world_context),
            "device": str(c.device), "world_table_fingerprint": c.world_table_fingerprint, "note": POLICY_NOTE,
        }
        result["overall"]["policy"] = pool_world([e["policy"] for e in results_eps])
    out = inp.out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        result["output_dir"] = str(out)
        (tmp / "results.json").write_text(json.dumps(result, indent=2) + "\n")
        (tmp / "results.md").write_text(render_markdown(result))
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print("\n" + summary_paragraph(result))
    print(f"results in {out}/results.json and results.md")
    return result


def main(argv: list[str] | None = None) -> dict | None:
    import draccus

    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = draccus.parse(config_class=TokenAgreementConfig, args=argv)
    try:
        return run(cfg, argv)
    except TokenAgreementError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
