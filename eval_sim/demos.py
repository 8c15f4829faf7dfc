"""Record scripted-expert LIBERO demonstrations as a LeRobotDataset in the HuggingFaceVLA/libero schema.

    lerobot-world demos --suite=libero_object --task_ids=0,1 --episodes_per_task=10 \\
        --output_dir=data/libero_object_demos [--image_size=128] [--init=random|fixed] [--seed=0] \\
        [--num_workers=2] [--max_steps=280] [--fill=true] [--record=true]

Each episode starts from a LIBERO random placement seeded with ``seed + k`` (``--init=random``, the
default) or from LIBERO's own fixed init state ``init_start + k`` (``--init=fixed``), is driven by
:class:`eval_sim.scripted_expert.ScriptedExpert`, and is kept only if LIBERO reports success.
Random placements are the default because eval-sim evaluates from LIBERO's fixed init states: a policy
trained on ``--init=fixed`` demos would be scored on its own training conditions. eval-sim refuses every
evaluated init state a checkpoint's demos started from (``eval_sim.training_conditions``), so fixed init
states must be disjoint from the evaluated ones (e.g. ``--init=fixed --init_start=10`` against eval-sim's
default ``--init_state_start=0`` with at most 10 episodes per task). ``results.json`` records each
episode's init state (None for a random placement) and seed; that is how eval-sim finds them.

Observations go through LeRobot's own ``LiberoEnv`` -> ``preprocess_observation`` -> LIBERO env
processor (``LiberoEnv.get_env_processors()``), so the stored images have exactly the 180-degree
orientation and the 8-dim state a policy sees in LeRobot's closed loop; images are stored as uint8
(the processor's float image times 255, which is exact). ``task`` is the env's ``task_description``.

``--record=false`` only measures the expert's success rate, physics-only (no cameras: far cheaper).
``--fill=true`` keeps trying further init states / seeds (up to 2x) until a task has ``episodes_per_task``
successes; success rates always count every attempted episode.

Workers (``--num_workers``) are separate processes, each with its own env; episodes come back as
temporary files and are written into one dataset in (task, init) order, so the result does not
depend on scheduling. Writes ``results.json`` and ``results.md`` (per-task success) next to the dataset.
"""

import dataclasses
import datetime as dt
import json
import multiprocessing as mp
import os
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lerobot_world.errors import UserError, parse_config, run_command
from lerobot_world.outputs import replace_path
from lerobot_world.vocabulary import AGENT_KEY, WRIST_KEY

SUITES = ("libero_object", "libero_spatial", "libero_goal", "libero_10", "libero_90")


class DemosError(UserError):
    """Bad input to `demos`; one sentence naming the bad value and what was expected."""


@dataclass
class DemosConfig:
    # LIBERO suite: libero_object, libero_spatial, libero_goal, libero_10, libero_90.
    suite: str = "libero_object"
    # Comma-separated task ids ("0,1"), a list ("[0,1]"), or "all".
    task_ids: str = "0"
    # Episodes attempted per task (with --fill: successful episodes wanted per task).
    episodes_per_task: int = 10
    # Dataset root (must not exist unless --overwrite); results.json/results.md go inside it.
    output_dir: Path | None = None
    repo_id: str = "local/libero_scripted"
    # Square image size of both cameras (HuggingFaceVLA/libero uses 256).
    image_size: int = 128
    # random: LIBERO's random placement, seeded with seed + k (default: never one of eval-sim's fixed init
    # states); fixed: LIBERO's init states init_start, init_start+1, ... (the ones eval-sim evaluates from).
    init: str = "random"
    init_start: int = 0
    seed: int = 0
    num_workers: int = 2
    # Episode step limit; None = LeRobot's per-suite default (280 object/spatial, 520 libero_10).
    max_steps: int | None = None
    # Try further init states until episodes_per_task successes (at most 2x attempts).
    fill: bool = False
    # false: measure the expert's success rate only (physics-only, nothing recorded).
    record: bool = True
    # Store images as h264 video (true) or PNG frames (false).
    use_videos: bool = True
    overwrite: bool = False


def parse_task_ids(spec: str, n_tasks: int, suite: str) -> list[int]:
    s = str(spec).strip().strip("[]").strip()
    if s.lower() == "all":
        return list(range(n_tasks))
    try:
        ids = [int(x) for x in s.replace(" ", "").split(",") if x != ""]
    except ValueError:
        raise DemosError(f"--task_ids={spec!r} is not a comma-separated list of integers or 'all'.") from None
    bad = [i for i in ids if not 0 <= i < n_tasks]
    if not ids or bad:
        raise DemosError(f"--task_ids={spec!r}: {suite} has tasks 0..{n_tasks - 1}.")
    return ids


def _validate(cfg: DemosConfig) -> None:
    if cfg.suite not in SUITES:
        raise DemosError(f"--suite={cfg.suite!r} is not a LIBERO suite; expected one of {', '.join(SUITES)}.")
    if cfg.init not in ("fixed", "random"):
        raise DemosError(f"--init={cfg.init!r}; expected 'fixed' or 'random'.")
    if cfg.episodes_per_task < 1:
        raise DemosError(f"--episodes_per_task={cfg.episodes_per_task}; expected a positive integer.")
    if not 16 <= cfg.image_size <= 512:
        raise DemosError(f"--image_size={cfg.image_size}; expected 16..512.")
    if cfg.num_workers < 1:
        raise DemosError(f"--num_workers={cfg.num_workers}; expected >= 1.")
    if cfg.max_steps is not None and cfg.max_steps < 1:
        raise DemosError(f"--max_steps={cfg.max_steps}; expected a positive integer.")
    if cfg.output_dir is None and cfg.record:
        raise DemosError("--output_dir is required when recording (or pass --record=false).")
    if cfg.output_dir is not None and Path(cfg.output_dir).exists() and not cfg.overwrite:
        raise DemosError(f"--output_dir={cfg.output_dir} already exists; choose a new path or pass --overwrite=true.")


# --------------------------------------------------------------------------------------------------
# Worker side
# --------------------------------------------------------------------------------------------------


def _batch(x):
    if isinstance(x, dict):
        return {k: _batch(v) for k, v in x.items()}
    return np.asarray(x)[None]


class LeRobotLiberoRecorder:
    """LeRobot's LiberoEnv + its env processor: the observation a LeRobot policy would see, as a dataset frame."""

    def __init__(self, suite_name: str, task_id: int, image_size: int, init: str, max_steps: int | None):
        from lerobot.envs.configs import LiberoEnv as LiberoEnvConfig
        from lerobot.envs.libero import LiberoEnv

        from eval_sim.expert_rollout import suite_and_task

        suite, _ = suite_and_task(suite_name, task_id)
        self.env = LiberoEnv(
            suite, task_id, suite_name, episode_length=max_steps, obs_type="pixels_agent_pos",
            observation_width=image_size, observation_height=image_size, init_states=(init == "fixed"),
        )
        self.env_pre, _ = LiberoEnvConfig(task=suite_name).get_env_processors()
        self.max_steps = self.env._max_episode_steps
        self.task = self.env.task_description

    def observation(self, raw_obs) -> dict:
        """What a LeRobot policy receives (batch of 1): preprocess_observation -> LIBERO env processor
        (images float [1, 3, H, W] in [0, 1], 180-degree flipped; 8-dim ``observation.state``)."""
        from lerobot.envs.utils import preprocess_observation

        obs = preprocess_observation(_batch(raw_obs))
        obs["task"] = [self.task]
        return self.env_pre(obs)

    def frame(self, raw_obs) -> dict:
        import torch

        obs = self.observation(raw_obs)
        out = {}
        for key in (AGENT_KEY, WRIST_KEY):
            img = obs[key][0].permute(1, 2, 0)  # C,H,W float in [0,1] -> H,W,C
            out[key] = (img * 255).round().clamp(0, 255).to(torch.uint8).numpy()
        out["observation.state"] = obs["observation.state"][0].numpy().astype(np.float32)
        return out

    def reset(self, init_id: int | None, seed: int):
        """Reset to LIBERO's fixed init state ``init_id`` (None: random placement) with ``seed``; raw observation."""
        if init_id is not None:
            self.env.init_state_id = init_id
        raw, _ = self.env.reset(seed=seed)
        return raw

    def episode(self, expert, init_id: int | None, seed: int) -> tuple[bool, dict]:
        raw = self.reset(init_id, seed)
        expert.reset()
        frames = {AGENT_KEY: [], WRIST_KEY: [], "observation.state": [], "action": []}
        success = False
        for _ in range(self.max_steps):
            f = self.frame(raw)
            action = np.clip(expert.act(self.env), -1, 1).astype(np.float32)
            for k, v in f.items():
                frames[k].append(v)
            frames["action"].append(action)
            raw, _, terminated, _, info = self.env.step(action)
            if info.get("is_success"):
                success = True
                break
        return success, {k: np.stack(v) for k, v in frames.items()}

    def close(self):
        self.env.close()


def _job_pool(cfg: DemosConfig, n_inits: int) -> list[int]:
    """Episode keys of one task, in order: init-state ids (fixed) or seed offsets (random)."""
    tries = cfg.episodes_per_task * (2 if cfg.fill else 1)
    if cfg.init == "fixed":
        ids = list(range(cfg.init_start, min(cfg.init_start + tries, n_inits)))
        if not ids:
            raise DemosError(f"--init_start={cfg.init_start}: the task has only {n_inits} init states.")
        return ids
    return list(range(tries))


def _run_chunk(args) -> list[dict]:
    """Worker: one task, a disjoint slice of its episode keys; returns episode records (frames in tmp files)."""
    cfg, task_id, keys, want, tmpdir, queue = args
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from eval_sim.scripted_expert import ScriptedExpert

    expert = ScriptedExpert()
    recs = []
    if cfg.record:
        rec = LeRobotLiberoRecorder(cfg.suite, task_id, cfg.image_size, cfg.init, cfg.max_steps)
    else:
        from lerobot.envs.libero import TASK_SUITE_MAX_STEPS

        from eval_sim.expert_rollout import make_physics_env, reset_like_lerobot, run_expert_episode

        env, inits, _ = make_physics_env(cfg.suite, task_id)
        max_steps = cfg.max_steps or TASK_SUITE_MAX_STEPS.get(cfg.suite, 500)
    n_ok = 0
    for key in keys:
        if want is not None and n_ok >= want:
            break
        t0 = time.perf_counter()
        init_id = key if cfg.init == "fixed" else None
        seed = cfg.seed + key
        path = None
        if cfg.record:
            ok, frames = rec.episode(expert, init_id, seed)
            steps = len(frames["action"])
            if ok:
                path = os.path.join(tmpdir, f"t{task_id:03d}_k{key:04d}.npz")
                np.savez(path, **frames)
        else:
            reset_like_lerobot(env, inits[init_id % len(inits)] if init_id is not None else None, seed)
            ok, steps = run_expert_episode(env, expert, max_steps)
        n_ok += ok
        r = {"task_id": task_id, "key": key, "init_id": init_id, "seed": seed, "success": bool(ok),
             "steps": int(steps), "seconds": round(time.perf_counter() - t0, 2), "file": path,
             "attempts": expert.s.attempts}
        recs.append(r)
        if queue is not None:
            queue.put(r)
    if cfg.record:
        recs_task = rec.task
        rec.close()
    else:
        from eval_sim.expert_rollout import suite_and_task

        recs_task = suite_and_task(cfg.suite, task_id)[1].language
        env.close()
    for r in recs:
        r["task"] = recs_task
    return recs


# --------------------------------------------------------------------------------------------------
# Parent side
# --------------------------------------------------------------------------------------------------


def _chunks(cfg, task_ids, n_inits_of, workers) -> list[tuple[int, list[int], int | None]]:
    jobs = []
    for t in task_ids:
        keys = _job_pool(cfg, n_inits_of(t))
        # split each task over the workers (env creation is per chunk, so not finer than needed)
        n = max(1, min(workers, len(keys) // 3 or 1)) if len(task_ids) < workers else 1
        for j in range(n):
            part = keys[j::n]
            want = None
            if cfg.fill:
                want = cfg.episodes_per_task // n + (1 if j < cfg.episodes_per_task % n else 0)
            jobs.append((t, part, want))
    return jobs


def wilson(k: int, n: int) -> tuple[float, float]:
    """95% Wilson interval, the same one eval-sim reports ((0, 1) when there are no episodes)."""
    from lerobot_world.stats import wilson_interval

    return wilson_interval(k, n) or (0.0, 1.0)


def summarize(records: list[dict]) -> dict:
    per = {}
    for r in records:
        d = per.setdefault(r["task_id"], {"task": r["task"], "episodes": 0, "successes": 0, "steps_ok": []})
        d["episodes"] += 1
        d["successes"] += int(r["success"])
        if r["success"]:
            d["steps_ok"].append(r["steps"])
    out = {}
    for t, d in sorted(per.items()):
        lo, hi = wilson(d["successes"], d["episodes"])
        out[str(t)] = {
            "task": d["task"], "episodes": d["episodes"], "successes": d["successes"],
            "success_rate": d["successes"] / d["episodes"], "ci95": [lo, hi],
            "mean_steps_success": float(np.mean(d["steps_ok"])) if d["steps_ok"] else None,
        }
    k = sum(d["successes"] for d in out.values())
    n = sum(d["episodes"] for d in out.values())
    return {"per_task": out, "total": {"episodes": n, "successes": k, "success_rate": k / max(n, 1),
                                       "ci95": list(wilson(k, n))}}


def format_table(suite: str, summary: dict) -> str:
    lines = [f"| {suite} task | instruction | success | rate | 95% CI | mean steps (success) |",
             "|---|---|---|---|---|---|"]
    for t, d in summary["per_task"].items():
        ms = f"{d['mean_steps_success']:.0f}" if d["mean_steps_success"] is not None else "-"
        lines.append(f"| {t} | {d['task']} | {d['successes']}/{d['episodes']} | {d['success_rate']:.0%} | "
                     f"[{d['ci95'][0]:.2f}, {d['ci95'][1]:.2f}] | {ms} |")
    tot = summary["total"]
    lines.append(f"| all | | {tot['successes']}/{tot['episodes']} | {tot['success_rate']:.0%} | "
                 f"[{tot['ci95'][0]:.2f}, {tot['ci95'][1]:.2f}] | |")
    return "\n".join(lines)


def _write_dataset(cfg: DemosConfig, root: Path, kept: list[dict]):
    from lerobot.configs.video import RGBEncoderConfig
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from lerobot_world.dataset import libero_features

    ds = LeRobotDataset.create(
        repo_id=cfg.repo_id, fps=20, features=libero_features(cfg.image_size, cfg.use_videos), root=root,
        robot_type="panda", use_videos=cfg.use_videos,
        # h264 "ultrafast": ~1 s per episode instead of minutes with LeRobot's default AV1 (DESIGN §6).
        rgb_encoder=RGBEncoderConfig(vcodec="h264", preset="ultrafast", crf=18, g=2) if cfg.use_videos else None,
    )
    for r in kept:
        with np.load(r["file"]) as z:
            frames = {k: z[k] for k in (AGENT_KEY, WRIST_KEY, "observation.state", "action")}
        for i in range(len(frames["action"])):
            ds.add_frame({k: v[i] for k, v in frames.items()} | {"task": r["task"]})
        ds.save_episode()
    ds.finalize()
    return ds


def run(cfg: DemosConfig, argv: list[str] | None = None) -> dict:
    _validate(cfg)
    argv = sys.argv[1:] if argv is None else argv
    from eval_sim.libero_assets import ensure_libero_ready

    ensure_libero_ready()
    from lerobot.envs.libero import _get_suite, get_task_init_states

    suite = _get_suite(cfg.suite)
    task_ids = parse_task_ids(cfg.task_ids, suite.n_tasks, cfg.suite)
    n_inits = {t: len(get_task_init_states(suite, t)) for t in task_ids} if cfg.init == "fixed" else {}
    jobs = _chunks(cfg, task_ids, lambda t: n_inits.get(t, 10**6), cfg.num_workers)
    total = sum(len(k) if w is None else w for _, k, w in jobs)

    out = Path(cfg.output_dir) if cfg.output_dir is not None else None
    if out is not None and out.exists() and cfg.overwrite:
        shutil.rmtree(out)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".demos_tmp_", dir=(out.parent if out else None)))
    t0 = time.perf_counter()
    from tqdm import tqdm

    records: list[dict] = []
    bar = tqdm(total=total, desc=f"{cfg.suite} expert episodes", unit="ep", dynamic_ncols=True)
    try:
        if cfg.num_workers == 1:
            for t, keys, want in jobs:
                for r in _run_chunk((cfg, t, keys, want, str(scratch), None)):
                    records.append(r)
                    bar.update(1)
                    bar.set_postfix(ok=sum(x["success"] for x in records))
        else:
            ctx = mp.get_context("spawn")  # fresh processes: no inherited EGL/OpenGL state
            with ctx.Manager() as mgr:
                q = mgr.Queue()
                with ctx.Pool(cfg.num_workers) as pool:
                    res = pool.map_async(_run_chunk, [(cfg, t, k, w, str(scratch), q) for t, k, w in jobs], 1)
                    n_done = n_ok = 0
                    while not res.ready() or not q.empty():
                        try:
                            r = q.get(timeout=1.0)
                        except Exception:
                            continue
                        n_done += 1
                        n_ok += r["success"]
                        bar.update(1)
                        bar.set_postfix(ok=n_ok)
                    for chunk in res.get():
                        records.extend(chunk)
        bar.close()
        records.sort(key=lambda r: (r["task_id"], r["key"]))
        summary = summarize(records)
        wall = time.perf_counter() - t0
        kept = [r for r in records if r["success"]]
        result = {
            "command": "lerobot-world demos " + " ".join(shlex.quote(a) for a in argv),
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items()},
            "suite": cfg.suite, "task_ids": task_ids, "wall_seconds": round(wall, 1),
            "created": dt.datetime.now().isoformat(timespec="seconds"),
            "physics_only": not cfg.record, **summary,
            "episodes": [{k: v for k, v in r.items() if k != "file"} for r in records],
        }
        table = format_table(cfg.suite, summary)
        if cfg.record:
            if not kept:
                raise DemosError(f"the expert succeeded in none of the {len(records)} episodes; nothing recorded.")
            tmp_root = scratch / "dataset"
            _write_dataset(cfg, tmp_root, kept)
            result["dataset"] = {"root": str(out), "repo_id": cfg.repo_id, "episodes": len(kept),
                                 "frames": int(sum(r["steps"] for r in kept)), "fps": 20,
                                 "image_size": cfg.image_size}
            (tmp_root / "results.json").write_text(json.dumps(result, indent=2))
            (tmp_root / "results.md").write_text(_markdown(cfg, result, table))
            replace_path(tmp_root, out)  # only a complete dataset appears at output_dir
            print("\n" + table)
            print(f"wrote {len(kept)} episodes to {out} (results.json, results.md inside)")
        elif out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / "results.json").write_text(json.dumps(result, indent=2))
            (out / "results.md").write_text(_markdown(cfg, result, table))
            print(f"wrote {out / 'results.json'} and results.md")
        if not cfg.record:
            print("\n" + table)
        return result
    finally:
        bar.close()
        shutil.rmtree(scratch, ignore_errors=True)


def _markdown(cfg, result, table) -> str:
    mode = "physics-only (no rendering)" if not cfg.record else f"recorded at {cfg.image_size}px"
    return (f"# Scripted expert on {cfg.suite}\n\n`{result['command']}`\n\n"
            f"init={cfg.init} (start {cfg.init_start}), seed={cfg.seed}, {mode}, wall {result['wall_seconds']} s\n\n"
            f"{table}\n")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    run_command(lambda: run(parse_config(DemosConfig, argv), argv))


if __name__ == "__main__":
    main()
