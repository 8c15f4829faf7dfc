"""Closed-loop LIBERO evaluation of any LeRobot policy (world_vla, ACT, ...) or of a scripted policy.

    lerobot-world eval-sim --policy.path=CHECKPOINT --env.task=libero_object --env.task_ids=[0] \\
        --n_episodes_per_task=10 --output_dir=outputs/eval_sim/run1 [--max_steps=280] [--batch_size=1] \\
        [--use_async_envs=false] [--seed=1000] [--init_state_start=0] [--corruption=none|random|shuffle|mask] \\
        [--video=true] [--max_videos_per_task=2] [--success_grid=[100,200]] [--device=cpu] \\
        [--allow_training_init_states=false]
    lerobot-world eval-sim --scripted_expert=true --env.task=libero_object ...   # the expert as the policy

Everything on the simulator side is LeRobot's: ``make_env`` builds the vector envs, observations go
through ``preprocess_observation`` -> LeRobot's LIBERO env processor (180-degree image flip, 8-dim
state) -> the policy's own saved preprocessor, and actions back through its postprocessor and the env
postprocessor, in the same order as ``lerobot-eval``'s ``rollout``. The loop itself is written here
(not ``lerobot_eval.rollout``) because the study needs per-step hooks that function does not offer:
which step started an action chunk, the world tokens a world_vla policy observed and predicted, the
BDDL goal predicates of the final state, fixed init-state ids per episode, privileged simulator access
for scripted policies, and per-phase timing.

A checkpoint is never scored on the init states its training demos started from: before any env is
built, ``eval_sim.training_conditions`` reads them from the checkpoint's ``train_config.json`` and the
dataset's ``results.json`` (written by ``lerobot-world demos``) and an overlap is refused (exit code 2)
unless ``--allow_training_init_states=true``; results.json records what was checked
(``training_init_states``), or that the training init states are unknown and why.

Python API (e.g. to run the scripted expert *as a policy* through the same harness)::

    from eval_sim.evaluate import EvalSimConfig, evaluate
    results = evaluate(EvalSimConfig(env=LiberoEnv(task="libero_object", task_ids=[0]),
                                     n_episodes_per_task=5, output_dir=Path("out")), policy=my_policy)

where ``my_policy`` is a :class:`SimPolicy`: ``my_policy(observation, ctx) -> actions [B, 7]`` with
``ctx.envs`` the live ``lerobot.envs.libero.LiberoEnv`` sub-envs (synchronous vector env only).

The pieces live beside this command module: ``eval_sim.policies`` (what can be run),
``eval_sim.libero_env`` (simulator instrumentation), ``eval_sim.rollout`` (the loop) and
``eval_sim.results_md`` (results.md); the names other code uses are re-exported here.
"""

import dataclasses
import datetime as dt
import json
import logging
import platform
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lerobot.envs.configs import LiberoEnv

from eval_sim import metrics
from eval_sim.errors import EvalSimError
from eval_sim.libero_env import instrument_vector_env, prepare_libero, validate_env_request
from eval_sim.policies import (
    LoadedPolicy,
    PolicyRunner,
    ScriptedExpertPolicy,
    SimPolicy,
    load_policy,
    load_policy_config,
    policy_image_size,
)
from eval_sim.results_md import fmt_value, render_markdown
from eval_sim.rollout import Timing, run_task
from eval_sim.training_conditions import (
    check_training_init_states,
    describe,
    find_training_init_states,
    not_a_checkpoint,
    results_record,
)
from lerobot_world.errors import parse_config, run_command
from lerobot_world.outputs import staged_dir
from lerobot_world.vocabulary import CORRUPTIONS as WORLD_CORRUPTIONS
from lerobot_world.vocabulary import MISSING

# "none": the clean run; the others replace the world input (lerobot_world.vocabulary.CORRUPTIONS).
CORRUPTIONS = ("none", *WORLD_CORRUPTIONS)


def _default_env() -> LiberoEnv:
    return LiberoEnv(task="libero_object")


@dataclass
class EvalSimConfig:
    # LeRobot's LIBERO env config (--env.task=SUITE[,SUITE], --env.task_ids=[..], --env.observation_height, ...).
    # Image size defaults to the policy's input image size unless --env.observation_height/width are given.
    env: LiberoEnv = field(default_factory=_default_env)
    # Where results.json, results.md and videos/ go (written to a temp dir, moved into place at the end).
    output_dir: Path | None = None
    n_episodes_per_task: int = 10
    # Number of parallel envs (LeRobot vector env); episodes run in batches of this size.
    batch_size: int = 1
    # Subprocess envs (gymnasium AsyncVectorEnv) instead of in-process ones.
    use_async_envs: bool = False
    # Episode step limit; None keeps LeRobot's per-suite default (e.g. 280 for libero_object).
    max_steps: int | None = None
    # Episode e of every task is reset with seed `seed + e` (LeRobot's convention) and torch is seeded with `seed`.
    seed: int = 1000
    # Episode e of a task starts from LIBERO's fixed init state `init_state_start + e` (50 per task).
    init_state_start: int = 0
    # Evaluate a checkpoint even on init states its training demos started from (refused otherwise).
    allow_training_init_states: bool = False
    # World-input corruption during rollouts (world_vla only): none | random | shuffle | mask.
    corruption: str = "none"
    video: bool = True
    max_videos_per_task: int = 2
    # T grid for "success within T steps"; None: every 100 steps (quarters for short runs) + max_steps.
    success_grid: list[int] | None = None
    # Torch device for the policy; None: cuda if available, else cpu.
    device: str | None = None
    # Replace an existing output_dir (otherwise an existing non-empty output_dir is an error).
    overwrite: bool = False
    # Run eval_sim.scripted_expert (privileged simulator state) as the policy instead of --policy.path.
    scripted_expert: bool = False


# --------------------------------------------------------------------------------------------------
# The evaluation job
# --------------------------------------------------------------------------------------------------


def _rebuild_env_cfg(env_cfg, **changes):
    """A fresh LiberoEnv config with ``changes`` (its features are derived in __post_init__)."""
    kwargs = {f.name: getattr(env_cfg, f.name) for f in dataclasses.fields(env_cfg) if f.init}
    kwargs.pop("features", None)
    kwargs.pop("features_map", None)
    kwargs.update(changes)
    return type(env_cfg)(**kwargs)


def _validate_cfg(cfg: EvalSimConfig) -> None:
    if not isinstance(cfg.env, LiberoEnv):
        raise EvalSimError(f"eval_sim runs LIBERO only: got an env config of type {type(cfg.env).__name__}.")
    if cfg.corruption not in CORRUPTIONS:
        raise EvalSimError(f"--corruption={cfg.corruption!r} is not a corruption mode: expected one of {', '.join(CORRUPTIONS)}.")
    for name in ("n_episodes_per_task", "batch_size"):
        if getattr(cfg, name) < 1:
            raise EvalSimError(f"--{name}={getattr(cfg, name)} must be a positive integer.")
    if cfg.max_steps is not None and cfg.max_steps < 1:
        raise EvalSimError(f"--max_steps={cfg.max_steps} must be a positive integer.")
    if cfg.init_state_start < 0:
        raise EvalSimError(f"--init_state_start={cfg.init_state_start} must be >= 0.")
    if cfg.max_videos_per_task < 0:
        raise EvalSimError(f"--max_videos_per_task={cfg.max_videos_per_task} must be >= 0.")
    if cfg.success_grid is not None and (not cfg.success_grid or min(cfg.success_grid) < 1):
        raise EvalSimError(f"--success_grid={cfg.success_grid} must be a non-empty list of positive step counts.")


def _prepare_output_dir(cfg: EvalSimConfig, policy_type: str) -> Path:
    if cfg.output_dir is None:
        now = dt.datetime.now()
        suite = str(cfg.env.task).replace(",", "+")
        cfg.output_dir = Path("outputs/eval_sim") / f"{now:%Y-%m-%d}" / f"{now:%H-%M-%S}_{policy_type}_{suite}"
    out = Path(cfg.output_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not cfg.overwrite:
        raise EvalSimError(f"--output_dir={out} already exists and is not empty: pass a new directory or --overwrite=true.")
    return out


def _versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("lerobot", "torch", "mujoco", "robosuite", "hf-libero", "gymnasium", "lerobot_policy_world_vla"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def evaluate(
    cfg: EvalSimConfig,
    policy: LoadedPolicy | SimPolicy | None = None,
    *,
    policy_path: str | None = None,
    policy_overrides: list[str] | None = None,
    command: str | None = None,
    env_size_given: bool = False,
) -> dict:
    """Run the evaluation and write results.json, results.md and videos/ to cfg.output_dir.

    ``policy`` may be a :class:`LoadedPolicy`, a :class:`SimPolicy`, or None with ``policy_path`` set
    (loaded with LeRobot's make_policy). Returns the results dict (also in results.json).
    """
    from lerobot.envs import close_envs, make_env
    from lerobot.utils.random_utils import set_seed
    from lerobot.utils.utils import inside_slurm
    from tqdm import tqdm

    _validate_cfg(cfg)
    if policy is None and cfg.scripted_expert:
        if policy_path:
            raise EvalSimError("--scripted_expert=true and --policy.path are exclusive: pass one policy.")
        policy = ScriptedExpertPolicy()
    if policy is None and not policy_path:
        raise EvalSimError("no policy given: pass --policy.path=CHECKPOINT_DIR (a lerobot-train pretrained_model directory).")

    env_cfg = cfg.env
    if policy is None:
        pcfg = load_policy_config(policy_path, policy_overrides)
        size = policy_image_size(pcfg)
        if size and not env_size_given:
            env_cfg = _rebuild_env_cfg(env_cfg, observation_height=size[0], observation_width=size[1])
    if cfg.max_steps is not None:
        env_cfg = _rebuild_env_cfg(env_cfg, episode_length=cfg.max_steps)
    cfg.env = env_cfg

    prepare_libero()
    requested = validate_env_request(env_cfg, cfg.n_episodes_per_task, cfg.init_state_start)
    training_record = _check_training_init_states(cfg, requested, policy, policy_path)
    if policy is None:
        policy = load_policy(policy_path, env_cfg, cfg.device, policy_overrides)
    runner = PolicyRunner(policy, env_cfg, cfg.corruption)
    use_async = cfg.use_async_envs and cfg.batch_size > 1
    if use_async and runner.needs_env:
        raise EvalSimError("this policy reads the simulator directly (needs_env=True): it needs --use_async_envs=false.")

    out_dir = _prepare_output_dir(cfg, runner.type)
    set_seed(cfg.seed)
    started = time.time()
    envs = None
    try:
        with staged_dir(out_dir) as staged:  # results appear at out_dir only when complete
            tmp = staged.path
            envs = make_env(env_cfg, n_envs=cfg.batch_size, use_async_envs=use_async)
            timing = Timing()
            episodes: list[dict] = []
            max_steps = None
            n_total = sum(len(v) for v in requested.values()) * cfg.n_episodes_per_task
            with tqdm(total=n_total, desc="eval_sim episodes", unit="ep", disable=inside_slurm()) as bar:
                for suite, ids in requested.items():
                    for tid in ids:
                        vec = envs[suite][tid]
                        instrument_vector_env(vec)
                        max_steps = int(vec.call("_max_episode_steps")[0])
                        episodes += run_task(
                            vec,
                            runner,
                            suite=suite,
                            task_id=tid,
                            n_episodes=cfg.n_episodes_per_task,
                            max_steps=max_steps,
                            seed=cfg.seed,
                            init_state_start=cfg.init_state_start,
                            videos_dir=(tmp / "videos") if cfg.video and cfg.max_videos_per_task > 0 else None,
                            max_videos=cfg.max_videos_per_task,
                            fps=int(env_cfg.fps),
                            timing=timing,
                            progress=bar,
                        )
                        vec.close()
            results = summarize(cfg, runner, episodes, timing, max_steps, command, started, env_cfg)
            results = _with_training_record(results, training_record)
            (tmp / "results.json").write_text(json.dumps(results, indent=2))
            (tmp / "results.md").write_text(_render_markdown(results))
    finally:
        if envs is not None:
            try:
                close_envs(envs)
            except Exception:  # noqa: BLE001 - already closed per task
                pass
    results["output_dir"] = str(out_dir)
    return results


def _check_training_init_states(cfg: EvalSimConfig, requested, policy, policy_path) -> dict:
    """Refuse (before any env or output exists) to score a checkpoint on its training init states; the
    ``training_init_states`` record for results.json. See eval_sim.training_conditions for why."""
    ckpt = policy_path if policy is None else getattr(policy, "path", None)
    if ckpt:
        training = find_training_init_states(ckpt)
    else:
        training = not_a_checkpoint(getattr(policy, "name", None) or type(policy).__name__)
    overlap = check_training_init_states(
        training, requested, cfg.init_state_start, cfg.n_episodes_per_task,
        allow=cfg.allow_training_init_states, policy_path=ckpt,
    )
    record = results_record(training, overlap, cfg.allow_training_init_states)
    print(f"eval_sim: training init states: {describe(record)}", flush=True)
    return record


def _with_training_record(results: dict, record: dict) -> dict:
    """results with ``training_init_states`` placed right after ``init_state_start``."""
    out = {}
    for k, v in results.items():
        out[k] = v
        if k == "init_state_start":
            out["training_init_states"] = record
    out.setdefault("training_init_states", record)
    return out


def _render_markdown(results: dict) -> str:
    """results_md.render_markdown plus one header line on the training init states (when recorded)."""
    md = render_markdown(results)
    record = results.get("training_init_states")
    if not record:
        return md
    lines = md.split("\n")
    at = next((i + 1 for i, line in enumerate(lines) if line.startswith("- episodes:")), 2)
    lines.insert(at, f"- training init states: {describe(record)}")
    return "\n".join(lines)


def summarize(cfg, runner: PolicyRunner, episodes, timing: Timing, max_steps, command, started, env_cfg) -> dict:
    grid = sorted(set(cfg.success_grid)) if cfg.success_grid else metrics.default_success_grid(max_steps)
    horizon = runner.horizon
    per_task, per_suite = [], {}
    keys = sorted({(e["suite"], e["task_id"]) for e in episodes})
    for suite, tid in keys:
        eps = [e for e in episodes if e["suite"] == suite and e["task_id"] == tid]
        per_task.append({"suite": suite, "task_id": tid, "task": eps[0]["task"], **metrics.aggregate_episodes(eps, grid, horizon)})
    for suite in sorted({s for s, _ in keys}):
        eps = [e for e in episodes if e["suite"] == suite]
        per_suite[suite] = {"n_tasks": len({e["task_id"] for e in eps}), **metrics.aggregate_episodes(eps, grid, horizon)}
    overall = metrics.aggregate_episodes(episodes, grid, horizon)
    env_info = {
        "suites": sorted(per_suite),
        "task_ids": sorted({e["task_id"] for e in episodes}),
        "max_steps": max_steps,
        "observation_size": [env_cfg.observation_height, env_cfg.observation_width],
        "camera_name": env_cfg.camera_name,
        "control_mode": env_cfg.control_mode,
        "fps": env_cfg.fps,
        "batch_size": cfg.batch_size,
        "async_envs": bool(cfg.use_async_envs and cfg.batch_size > 1),
        "init_states": "LIBERO fixed init states; episode e uses init_state_start + e",
    }
    return {
        "command": command,
        "created": dt.datetime.now().isoformat(timespec="seconds"),
        "wall_s": time.time() - started,
        "seed": cfg.seed,
        "episode_seeds": "seed + episode_index (per task)",
        "init_state_start": cfg.init_state_start,
        "n_episodes_per_task": cfg.n_episodes_per_task,
        "n_episodes": len(episodes),
        "corruption": cfg.corruption,
        "policy": runner.policy_info,
        "env": env_info,
        "metric_definitions": {
            "ci95": "95% Wilson score interval of the success rate",
            "success_within": "fraction of episodes that succeeded within T actions",
            "goal_fraction": "share of the task's BDDL goal predicates true in the final state",
            "jerk": "mean |a[t+1]-2a[t]+a[t-1]| over the 6 arm dims (actions are velocity commands)",
            "chunk_jump": "mean |a[t]-a[t-1]| over the 6 arm dims at chunk-start steps vs within-chunk steps",
            "world_accuracy": "token predicted at t for t+k equals the token observed at t+k (k = 1..K)",
            "world_copy_baseline": "token observed at t equals the token observed at t+k, on the same (t, t+k) "
            "pairs as world_accuracy (predicting that the world does not change)",
            **metrics.WORLD_DEFINITIONS,  # changed-pair and top-5 world accuracy
        },
        "success_grid": grid,
        "overall": overall,
        "per_suite": per_suite,
        "per_task": per_task,
        "episodes": episodes,
        "throughput": timing.as_dict(),
        "versions": _versions(),
    }


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def _split_policy_args(argv: list[str]) -> tuple[str | None, list[str], list[str]]:
    """(--policy.path, the other --policy.* overrides, the remaining args) — LeRobot's path-field handling."""
    from lerobot.configs import parser

    path = parser.get_path_arg("policy", argv)
    overrides = parser.get_cli_overrides("policy", argv) or []
    rest, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        if a.startswith("--policy."):
            if "=" not in a and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                skip = True
            continue
        rest.append(a)
    return path, overrides, rest


def main(argv: list[str] | None = None) -> dict | None:
    import draccus

    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if "--help" in argv or "-h" in argv:
        print(__doc__.split("Python API")[0].strip())
        print("\n--policy.path=DIR  checkpoint directory (lerobot-train .../pretrained_model); --policy.<field>=V overrides its config\n")
        draccus.parse(EvalSimConfig, args=["--help"])
        return None
    policy_path, overrides, rest = _split_policy_args(argv)
    cfg = run_command(parse_config, EvalSimConfig, rest)
    env_size_given = any(a.startswith(("--env.observation_height", "--env.observation_width")) for a in rest)
    if cfg.scripted_expert and not env_size_given:  # no checkpoint to take the size from: the dataset schema's
        cfg.env = _rebuild_env_cfg(cfg.env, observation_height=256, observation_width=256)
    command = "lerobot-world eval-sim " + shlex.join(argv)
    results = run_command(
        evaluate, cfg, policy_path=policy_path, policy_overrides=overrides, command=command, env_size_given=env_size_given
    )
    o = results["overall"]
    ci = o["ci95"]
    print(
        f"eval_sim: success {o['n_success']}/{o['n_episodes']} ({fmt_value(o['success_rate'], True)}, 95% CI "
        f"{MISSING if not ci else f'{100 * ci[0]:.1f}–{100 * ci[1]:.1f}%'}); results in {results['output_dir']}/results.json, "
        f"results.md, videos/"
    )
    return results


if __name__ == "__main__":
    main()
