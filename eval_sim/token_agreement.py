"""`lerobot-world token-agreement`: do live world tokens equal the table's tokens for the same states?

    lerobot-world token-agreement --dataset.repo_id=local/libero_demo --dataset.root=data/libero_demo \\
        --world_tokens=tables/libero_demo_v32 [--episodes=[0,1]] [--output_dir=DIR]

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


class TokenAgreementError(ValueError):
    """Bad input; one sentence naming the bad value and what was expected."""


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


def _f(x, nd=4):
    return "-" if x is None else f"{x:.{nd}f}"


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
    return "\n".join(lines)


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
    return Inputs(meta=meta, table=table, demos=demos, episodes=[all_eps[e] for e in chosen], out=out)


# --------------------------------------------------------------------------------------------------
# Replay
# --------------------------------------------------------------------------------------------------


def _to_uint8_grid(images) -> np.ndarray:
    """[T, 3, H, W] uint8 or float in [0, 1] -> uint8 (round(x * 255): the tokenizer's own 8-bit snap)."""
    import torch

    from lerobot_world.world_tokenizer import to_pixel_grid

    return to_pixel_grid(torch.as_tensor(images)).to(torch.uint8).numpy()


def replay_episode(recorder, ep: dict, dataset, tokenizer, image_key: str, table_tokens) -> dict:
    """Replay one dataset episode's actions in ``recorder``'s env; the per-frame comparison."""
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
    for t, action in enumerate(actions):
        obs = recorder.observation(raw)
        live_imgs.append(obs[image_key][0].detach().cpu())  # float [3, H, W] in [0, 1]: what the policy gets
        live_states.append(obs["observation.state"][0].numpy())
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
    return compare_episode(
        table_tokens, live_tok, dec_tok, np.stack(live_states), np.stack(rec_states), _to_uint8_grid(live), _to_uint8_grid(dec)
    )


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
            r = replay_episode(rec, ep, dataset, tokenizer, image_key, tab)
            results_eps.append({k: ep[k] for k in ("episode_index", "task_id", "init_id", "seed", "task")}
                               | r | {"seconds": round(time.perf_counter() - te, 1)})
            print(f"episode {ep['episode_index']}: {r['agree']}/{r['frames']} tokens agree, max |Δstate| "
                  f"{r['state_max_abs_err']:.3g}, mean |Δpixel| {r['pixel_mean_abs_diff']:.3f}", flush=True)
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
        "overall": summarize(results_eps),
        "episodes": results_eps,
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
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
