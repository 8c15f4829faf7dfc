"""Closed-loop LIBERO evaluation of any LeRobot policy (world_vla, ACT, ...) or of a scripted policy.

    lerobot-world eval-sim --policy.path=CHECKPOINT --env.task=libero_object --env.task_ids=[0] \\
        --n_episodes_per_task=10 --output_dir=outputs/eval_sim/run1 [--max_steps=280] [--batch_size=1] \\
        [--use_async_envs=false] [--seed=1000] [--init_state_start=0] [--corruption=none|random|shuffle|mask] \\
        [--video=true] [--max_videos_per_task=2] [--success_grid=[100,200]] [--device=cpu]
    lerobot-world eval-sim --scripted_expert=true --env.task=libero_object ...   # the expert as the policy

Everything on the simulator side is LeRobot's: ``make_env`` builds the vector envs, observations go
through ``preprocess_observation`` -> LeRobot's LIBERO env processor (180-degree image flip, 8-dim
state) -> the policy's own saved preprocessor, and actions back through its postprocessor and the env
postprocessor, in the same order as ``lerobot-eval``'s ``rollout``. The loop itself is written here
(not ``lerobot_eval.rollout``) because the study needs per-step hooks that function does not offer:
which step started an action chunk, the world tokens a world_vla policy observed and predicted, the
BDDL goal predicates of the final state, fixed init-state ids per episode, privileged simulator access
for scripted policies, and per-phase timing.

Python API (e.g. to run the scripted expert *as a policy* through the same harness)::

    from eval_sim.evaluate import EvalSimConfig, evaluate
    results = evaluate(EvalSimConfig(env=LiberoEnv(task="libero_object", task_ids=[0]),
                                     n_episodes_per_task=5, output_dir=Path("out")), policy=my_policy)

where ``my_policy`` is a :class:`SimPolicy`: ``my_policy(observation, ctx) -> actions [B, 7]`` with
``ctx.envs`` the live ``lerobot.envs.libero.LiberoEnv`` sub-envs (synchronous vector env only).
"""

import dataclasses
import datetime as dt
import json
import logging
import math
import os
import platform
import shlex
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from lerobot.envs.configs import LiberoEnv

from eval_sim import metrics

logger = logging.getLogger(__name__)

CORRUPTIONS = ("none", "random", "shuffle", "mask")
AGENT_KEY = "observation.images.image"
WRIST_KEY = "observation.images.image2"


class EvalSimError(ValueError):
    """Bad input to eval_sim; the message is one sentence naming the bad value and what was expected."""


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
# Policies
# --------------------------------------------------------------------------------------------------


@dataclass
class StepContext:
    """What a :class:`SimPolicy` gets besides the observation."""

    step: int
    # The live LeRobot LiberoEnv sub-envs (their `._env` is LIBERO's OffScreenRenderEnv); None when the
    # envs run in subprocesses (--use_async_envs).
    envs: list | None
    # The raw vector-env observation (before LeRobot's preprocessing), numpy arrays with batch dim.
    raw_observation: dict
    task: list[str]
    done: np.ndarray


@runtime_checkable
class SimPolicy(Protocol):
    """A non-checkpoint policy (e.g. the scripted expert) run through the harness.

    ``__call__`` returns actions (B, 7) in the env's action space. Optional attributes: ``reset()``
    (called before each batch of episodes), ``needs_env = True`` (forces in-process envs so
    ``ctx.envs`` is set), ``last_chunk_start`` (bool, read after each call for the chunk metrics).
    """

    def __call__(self, observation: dict, ctx: StepContext) -> Any: ...


@dataclass
class LoadedPolicy:
    """A LeRobot policy with the processor chain lerobot-eval uses around it."""

    policy: Any
    preprocessor: Any
    postprocessor: Any
    env_preprocessor: Any
    env_postprocessor: Any
    path: str | None = None


class ScriptedExpertPolicy:
    """eval_sim.scripted_expert as a :class:`SimPolicy`: one expert state machine per sub-env.

    It reads object poses from the live simulator (``ctx.envs``), so it needs in-process envs.
    """

    name = "scripted_expert"
    needs_env = True

    def __init__(self, **expert_kwargs):
        self.expert_kwargs = expert_kwargs
        self.experts: list = []

    def reset(self) -> None:
        self.experts = []  # rebuilt at the first step of the batch, once the envs are reset

    def __call__(self, observation: dict, ctx: StepContext) -> np.ndarray:
        from eval_sim.scripted_expert import ScriptedExpert

        if ctx.envs is None:
            raise EvalSimError("the scripted expert reads the simulator directly: it needs --use_async_envs=false.")
        if not self.experts:
            self.experts = [ScriptedExpert(**self.expert_kwargs) for _ in ctx.envs]
            for e in self.experts:
                e.reset()
        out = np.zeros((len(ctx.envs), 7), dtype=np.float32)
        out[:, 6] = -1.0
        for i, (expert, env) in enumerate(zip(self.experts, ctx.envs, strict=True)):
            if not ctx.done[i]:  # a finished sub-env is frozen by the harness; its action is ignored
                out[i] = expert.act(env)
        return out


def _register_plugins() -> None:
    import lerobot.policies  # noqa: F401 - registers the built-in policy configs (act, diffusion, ...)
    from lerobot.utils.import_utils import register_third_party_plugins

    register_third_party_plugins()
    try:  # this project's plugin, also when it is not pip-installed
        import lerobot_world.configuration_world_vla  # noqa: F401
    except ImportError:
        pass


def resolve_device(device: str | None) -> str:
    import torch

    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_policy_config(policy_path: str, overrides: list[str] | None = None):
    """The policy's saved config (draccus CLI overrides applied), with one clear error on a bad path."""
    from lerobot.configs.policies import PreTrainedConfig

    p = Path(policy_path)
    if (p / "pretrained_model" / "config.json").is_file():  # a checkpoint step dir: take its pretrained_model
        p = p / "pretrained_model"
        policy_path = str(p)
    if p.exists() and not (p / "config.json").is_file():
        raise EvalSimError(
            f"--policy.path={policy_path} has no config.json: expected a checkpoint directory saved by "
            "lerobot-train (.../checkpoints/<step>/pretrained_model) or by save_pretrained."
        )
    if not p.exists() and (os.environ.get("HF_HUB_OFFLINE") == "1" or p.is_absolute() or policy_path.startswith(".")):
        raise EvalSimError(
            f"--policy.path={policy_path} does not exist: expected a local checkpoint directory "
            "(.../pretrained_model) or, with the Hub reachable, a Hub repo id."
        )
    _register_plugins()  # after the cheap path checks: it imports every installed policy plugin
    try:
        cfg = PreTrainedConfig.from_pretrained(policy_path, cli_overrides=list(overrides or []))
    except Exception as e:  # noqa: BLE001 - turned into one sentence for the user
        raise EvalSimError(f"--policy.path={policy_path} could not be loaded as a LeRobot policy config: {e}") from e
    cfg.pretrained_path = Path(policy_path) if p.exists() else policy_path
    return cfg


def load_policy(policy_path: str, env_cfg, device: str | None = None, overrides: list[str] | None = None) -> LoadedPolicy:
    """Load a checkpoint exactly as lerobot-eval does: make_policy + its saved pre/post processors."""
    from lerobot.envs.factory import make_env_pre_post_processors
    from lerobot.policies.factory import make_policy, make_pre_post_processors

    cfg = load_policy_config(policy_path, overrides)
    policy_path = str(cfg.pretrained_path)
    cfg.device = resolve_device(device)
    policy = make_policy(cfg=cfg, env_cfg=env_cfg)
    policy.eval()
    preprocessor, postprocessor = make_pre_post_processors(
        policy_cfg=cfg,
        pretrained_path=str(cfg.pretrained_path),
        preprocessor_overrides={
            "device_processor": {"device": str(policy.config.device)},
            "rename_observations_processor": {"rename_map": {}},
        },
    )
    env_pre, env_post = make_env_pre_post_processors(env_cfg=env_cfg, policy_cfg=cfg)
    return LoadedPolicy(policy, preprocessor, postprocessor, env_pre, env_post, path=str(policy_path))


def policy_image_size(policy_cfg) -> tuple[int, int] | None:
    """(H, W) of the policy's camera inputs if they all agree, else None."""
    shapes = {
        tuple(ft.shape[-2:])
        for key, ft in (getattr(policy_cfg, "input_features", None) or {}).items()
        if key.startswith("observation.images.")
    }
    return shapes.pop() if len(shapes) == 1 else None


def _action_queue_len(policy) -> int | None:
    queue = getattr(policy, "_action_queue", None)
    if queue is None:
        queues = getattr(policy, "_queues", None)
        queue = queues.get("action") if isinstance(queues, dict) else None
    return None if queue is None else len(queue)


class _Runner:
    """One interface over a LeRobot policy (full processor chain) and a SimPolicy.

    ``act`` returns numpy actions (B, 7) plus per-step extras: whether a new action chunk started and,
    for world_vla, the observed token [B] and predicted tokens [B, K] (or None).
    """

    def __init__(self, policy: LoadedPolicy | SimPolicy, env_cfg, corruption: str = "none"):
        import torch

        self.torch = torch
        self.loaded = policy if isinstance(policy, LoadedPolicy) else None
        self.sim = None if self.loaded else policy
        if self.loaded is None:
            from lerobot.envs.factory import make_env_pre_post_processors

            if not callable(policy):
                raise EvalSimError(f"policy {policy!r} is neither a LeRobot checkpoint nor a callable SimPolicy.")
            if corruption != "none":
                raise EvalSimError(f"--corruption={corruption} needs a world_vla policy; a scripted policy has no world input.")
            self.env_pre, self.env_post = env_cfg.get_env_processors()
            self.needs_env = bool(getattr(policy, "needs_env", False))
            self.type = getattr(policy, "name", type(policy).__name__)
            self.horizon = None
            return
        p = self.loaded.policy
        self.env_pre, self.env_post = self.loaded.env_preprocessor, self.loaded.env_postprocessor
        self.needs_env = False
        self.type = p.config.type
        is_world = self.type == "world_vla" and hasattr(p, "world_corruption")
        if corruption != "none" and not is_world:
            raise EvalSimError(
                f"--corruption={corruption} needs a world_vla policy; the policy is {self.type!r}, which has no world input."
            )
        if is_world:
            p.world_corruption = None if corruption == "none" else corruption
        predicts = getattr(p.config, "predicts_world", True)
        self.horizon = int(p.config.future_offset) if is_world and predicts else None
        self.temporal_ensemble = getattr(p.config, "temporal_ensemble_coeff", None) is not None
        self._last_pred = None

    @property
    def policy_info(self) -> dict:
        if self.loaded is None:
            return {"type": self.type, "path": None, "kind": "scripted"}
        c = self.loaded.policy.config
        info = {"type": c.type, "path": self.loaded.path, "kind": "checkpoint", "device": str(c.device)}
        for name in ("variant", "chunk_size", "n_action_steps", "future_offset", "world_context", "temporal_ensemble_coeff"):
            if hasattr(c, name):
                info[name] = getattr(c, name)
        return info

    def reset(self) -> None:
        target = self.loaded.policy if self.loaded else self.sim
        if hasattr(target, "reset"):
            target.reset()
        self._last_pred = None

    def act(self, observation: dict, ctx: StepContext) -> tuple[np.ndarray, bool | None, Any, Any]:
        torch = self.torch
        if self.loaded is None:
            action = self.sim(observation, ctx)
            action = action.detach().cpu().numpy() if hasattr(action, "detach") else np.asarray(action)
            chunk = getattr(self.sim, "last_chunk_start", None)
            return action.astype(np.float32), chunk, None, None
        lp = self.loaded
        batch = lp.preprocessor(observation)
        qlen = _action_queue_len(lp.policy)
        with torch.inference_mode():
            action = lp.policy.select_action(batch)
        observed = predicted = None
        if self.horizon:
            o = getattr(lp.policy, "last_world_observed", None)
            observed = None if o is None else o.detach().cpu().numpy().astype(np.int64)
            pr = getattr(lp.policy, "last_world_predicted", None)
            if pr is not None and pr is not self._last_pred:
                predicted = pr.detach().cpu().numpy().astype(np.int64)
            self._last_pred = pr
        if self.temporal_ensemble:
            chunk = True
        elif qlen is not None:
            chunk = qlen == 0
        elif self.horizon:
            chunk = predicted is not None
        else:
            chunk = None
        action = lp.postprocessor(action)
        action = lp.env_postprocessor({"action": action})["action"]
        return action.to("cpu").numpy().astype(np.float32), chunk, observed, predicted


# --------------------------------------------------------------------------------------------------
# Environment helpers
# --------------------------------------------------------------------------------------------------


def prepare_libero() -> None:
    """Make `import libero.libero` work offline and without a stdin prompt (config.yaml + verified assets)."""
    from eval_sim.libero_assets import LiberoAssetsError, ensure_libero_ready

    try:
        ensure_libero_ready(quiet=True)
    except LiberoAssetsError as e:
        raise EvalSimError(str(e)) from e


def _goal_state_of(libero_env) -> list[tuple[str, bool]]:
    """Each BDDL goal predicate of the task and whether it holds in the current simulator state."""
    domain = libero_env._env.env  # LeRobot LiberoEnv -> LIBERO OffScreenRenderEnv -> BDDL problem domain
    out = []
    for pred in domain.parsed_problem["goal_state"]:
        out.append(("(" + " ".join(str(x) for x in pred) + ")", bool(domain._eval_predicate(pred))))
    return out


def _make_goal_probe_cls():
    import gymnasium as gym

    class GoalProbe(gym.Wrapper):
        """Adds `eval_sim_goal_state()` to a LiberoEnv so it can be called through any vector env."""

        def eval_sim_goal_state(self):
            return _goal_state_of(self.env.unwrapped)

    return GoalProbe


def _with_goal_probe(fn: Callable):
    return _make_goal_probe_cls()(fn())


def instrument_vector_env(vec) -> None:
    """Wrap each sub-env in a goal-predicate probe and LeRobot's FreezeAfterEpisodeEnd.

    Freezing (LeRobot's own wrapper; its async vector env already applies it) keeps a finished sub-env
    at its terminal state: gymnasium's next-step autoreset would otherwise reset it, advancing its
    init-state counter and destroying the state whose goal predicates we read at the end of the batch.
    """
    import gymnasium as gym
    from lerobot.envs.utils import FreezeAfterEpisodeEnd

    if isinstance(vec, gym.vector.SyncVectorEnv):
        probe = _make_goal_probe_cls()
        vec.envs = [FreezeAfterEpisodeEnd(probe(e)) for e in vec.envs]
    elif hasattr(vec, "_env_fns") and getattr(vec, "_env", None) is None:  # LeRobot's lazy async env
        vec._env_fns = [partial(_with_goal_probe, fn) for fn in vec._env_fns]
    else:
        raise EvalSimError(f"unsupported vector env {type(vec).__name__}: expected LeRobot's Sync or lazy Async env.")


def _set_attr(vec, name: str, values: list) -> None:
    if hasattr(vec, "set_attr"):
        vec.set_attr(name, values)
    else:  # LeRobot's _LazyAsyncVectorEnv forwards only reset/step/call/get_attr
        vec._ensure()
        vec._env.set_attr(name, values)


def _successes(info: dict, n: int) -> np.ndarray:
    """Per-env is_success from a vector-env info dict (gymnasium >= 1.0 and the older final_info form)."""
    if "final_info" in info:
        fi = info["final_info"]
        if isinstance(fi, dict):
            s = fi.get("is_success", np.zeros(n, dtype=bool))
            return np.asarray(s, dtype=bool).reshape(n)
        return np.array([bool(isinstance(x, dict) and x.get("is_success")) for x in fi], dtype=bool)
    if "is_success" in info:
        return np.asarray(info["is_success"], dtype=bool).reshape(n)
    return np.zeros(n, dtype=bool)


def validate_env_request(env_cfg, n_episodes: int, init_state_start: int) -> dict[str, list[int]]:
    """Check suites and task ids against LIBERO's benchmark before building anything; return them."""
    from libero.libero import benchmark

    bench = benchmark.get_benchmark_dict()
    suites = [s.strip() for s in str(env_cfg.task or "").split(",") if s.strip()]
    if not suites:
        raise EvalSimError(f"--env.task={env_cfg.task!r} names no LIBERO suite: expected one of {', '.join(sorted(bench))}.")
    out = {}
    for s in suites:
        if s not in bench:
            raise EvalSimError(f"unknown LIBERO suite --env.task={s!r}: expected one of {', '.join(sorted(bench))}.")
        suite = bench[s]()
        n = suite.n_tasks
        ids = list(range(n)) if env_cfg.task_ids is None else sorted({int(t) for t in env_cfg.task_ids})
        bad = [t for t in ids if not 0 <= t < n]
        if bad:
            raise EvalSimError(f"--env.task_ids contains {bad[0]}, out of range for {s}: expected ids in 0..{n - 1}.")
        for t in ids:
            n_init = len(suite.get_task_init_states(t))
            if init_state_start + n_episodes > n_init:
                raise EvalSimError(
                    f"--init_state_start={init_state_start} with --n_episodes_per_task={n_episodes} needs init states "
                    f"up to {init_state_start + n_episodes - 1}, but {s} task {t} has {n_init} (ids 0..{n_init - 1})."
                )
        out[s] = ids
    return out


# --------------------------------------------------------------------------------------------------
# Rollouts
# --------------------------------------------------------------------------------------------------


@dataclass
class Timing:
    """Seconds spent per phase of the rollout loop, summed over all steps."""

    env_s: float = 0.0  # vec.step: physics + camera rendering
    policy_s: float = 0.0  # policy preprocessor + select_action + postprocessors
    harness_s: float = 0.0  # everything else: observation preprocessing, bookkeeping, video frames
    reset_s: float = 0.0
    env_steps: int = 0  # sub-env steps of episodes still running
    vec_steps: int = 0

    def as_dict(self) -> dict:
        loop = self.env_s + self.policy_s + self.harness_s
        d = dataclasses.asdict(self)
        d.update(
            env_steps_per_s=self.env_steps / loop if loop else None,
            env_steps_per_s_without_policy=self.env_steps / (loop - self.policy_s) if loop - self.policy_s > 0 else None,
            env_only_steps_per_s=self.env_steps / self.env_s if self.env_s else None,
            harness_overhead_vs_env=self.harness_s / self.env_s if self.env_s else None,
        )
        return d


def _episode_lines(ep_label: str, step: int, max_steps: int, success: bool, done: bool, world: tuple | None):
    white, green, red, grey = (255, 255, 255), (90, 255, 90), (255, 90, 90), (200, 200, 200)
    status = ("SUCCESS", green) if success else (("FAIL", red) if done else ("running", grey))
    lines = [(ep_label, white), (f"step {step}/{max_steps}", white), status]
    if world is not None:
        obs_tok, pred_tok, k = world
        lines.append((f"w_obs {obs_tok}", grey))
        if pred_tok is not None:
            lines.append((f"w_pred {pred_tok} (k={k})", green if pred_tok == obs_tok else red))
    return lines


def run_task(
    vec,
    runner: _Runner,
    *,
    suite: str,
    task_id: int,
    n_episodes: int,
    max_steps: int,
    seed: int,
    init_state_start: int,
    videos_dir: Path | None,
    max_videos: int,
    fps: int,
    timing: Timing,
    progress=None,
) -> list[dict]:
    """Run ``n_episodes`` of one task through its vector env; return one record per episode."""
    from lerobot.envs import preprocess_observation
    from lerobot.envs.utils import NEW_ROLLOUT_OPTION
    from lerobot.utils.utils import inside_slurm
    from tqdm import trange

    from eval_sim.video import VideoWriter

    B = vec.num_envs
    is_sync = hasattr(vec, "envs")
    episodes: list[dict] = []
    task_text = None
    for first in range(0, n_episodes, B):
        ep_ids = list(range(first, first + B))
        init_ids = [init_state_start + e for e in ep_ids]
        t0 = time.perf_counter()
        _set_attr(vec, "init_state_id", init_ids)
        runner.reset()
        raw_obs, _ = vec.reset(seed=[seed + e for e in ep_ids], options={NEW_ROLLOUT_OPTION: True})
        tasks = list(vec.call("task_description"))
        task_text = tasks[0]
        sub_envs = [e.unwrapped for e in vec.envs] if (is_sync and runner.needs_env) else None
        timing.reset_s += time.perf_counter() - t0

        done = np.zeros(B, dtype=bool)
        success = np.zeros(B, dtype=bool)
        length = np.full(B, max_steps, dtype=int)
        actions, chunk_starts, observed = [], [], []
        predicted: dict[int, np.ndarray] = {}
        writers = {
            i: VideoWriter(videos_dir / f"{suite}_task{task_id:02d}_ep{e:03d}.mp4", fps)
            for i, e in enumerate(ep_ids)
            if videos_dir is not None and e < min(n_episodes, max_videos)
        }
        cur_pred: dict[int, tuple[int, np.ndarray]] = {}  # env -> (step it was predicted at, tokens [K])

        def frames(observation, step, final=False):
            for i, w in writers.items():
                world = None
                if runner.horizon and observed:
                    o = int(observed[-1][i]) if not final else None
                    p = k = None
                    if i in cur_pred and not final:
                        t_p, toks = cur_pred[i]
                        k = step - t_p
                        p = int(toks[k - 1]) if 1 <= k <= len(toks) else None
                    world = (o, p, k) if o is not None else None
                label = f"{suite} t{task_id} ep{ep_ids[i]} init{init_ids[i]}"
                lines = _episode_lines(label, min(step, length[i]), max_steps, success[i], done[i], world)
                # tensors of this step's observation: LeRobot's processors never modify them in place
                img2 = observation[WRIST_KEY][i] if WRIST_KEY in observation else None
                w.append_views(observation[AGENT_KEY][i], img2, lines)

        steps = trange(max_steps, desc=f"{suite} task {task_id} episodes {first}-{first + B - 1}", leave=False, disable=inside_slurm())
        step = 0
        try:
            while step < max_steps and not done.all():
                t0 = time.perf_counter()
                observation = preprocess_observation(raw_obs)
                observation["task"] = tasks
                observation = runner.env_pre(observation)
                ctx = StepContext(step=step, envs=sub_envs, raw_observation=raw_obs, task=tasks, done=done.copy())
                t1 = time.perf_counter()
                action, chunk, obs_tok, pred_tok = runner.act(observation, ctx)
                t2 = time.perf_counter()
                if action.shape != (B, 7):
                    raise EvalSimError(f"the policy returned actions of shape {action.shape}: expected ({B}, 7).")
                actions.append(action)
                chunk_starts.append(chunk)
                if obs_tok is not None:
                    observed.append(obs_tok)
                if writers:
                    frames(observation, step)
                    # finished episodes got their final frame from this observation: close them now
                    for i in [i for i in writers if done[i]]:
                        writers.pop(i).close()
                if pred_tok is not None:
                    for i in range(B):
                        cur_pred[i] = (step, pred_tok[i])
                    predicted[step] = pred_tok
                t3 = time.perf_counter()
                raw_obs, _reward, terminated, truncated, info = vec.step(action)
                t4 = time.perf_counter()
                ended = np.asarray(terminated, dtype=bool) | np.asarray(truncated, dtype=bool)
                succ_now = _successes(info, B)
                timing.env_steps += int((~done).sum())
                timing.vec_steps += 1
                new = ended & ~done
                success[new] = succ_now[new]
                length[new] = step + 1
                done |= ended
                step += 1
                steps.update()
                t5 = time.perf_counter()
                timing.harness_s += (t1 - t0) + (t3 - t2) + (t5 - t4)
                timing.policy_s += t2 - t1
                timing.env_s += t4 - t3
            steps.close()
            t0 = time.perf_counter()
            done[:] = True
            if writers:  # last observation of the episodes still recording
                observation = runner.env_pre({**preprocess_observation(raw_obs), "task": tasks})
                frames(observation, step, final=True)
                for i in list(writers):
                    writers.pop(i).close()
            timing.harness_s += time.perf_counter() - t0
        finally:
            for w in writers.values():  # only after an error
                w.close()

        goal = list(vec.call("eval_sim_goal_state"))
        acts = np.stack(actions, axis=1) if actions else np.zeros((B, 0, 7), np.float32)  # (B, T, 7)
        obs_arr = np.stack(observed, axis=1) if observed else None  # (B, T)
        for i, e in enumerate(ep_ids):
            if e >= n_episodes:
                continue  # padding env of the last batch
            L = int(length[i])
            a = acts[i, :L]
            cs = chunk_starts[:L]
            rec = {
                "suite": suite,
                "task_id": task_id,
                "task": task_text,
                "episode_index": e,
                "init_state_id": init_ids[i],
                "seed": seed + e,
                "success": bool(success[i]),
                "length": L,
                "goal_predicates": [{"predicate": p, "satisfied": s} for p, s in goal[i]],
                "goal_fraction": (sum(s for _, s in goal[i]) / len(goal[i])) if goal[i] else None,
                "jerk": _nan_to_none(metrics.action_jerk(a)),
                "chunk_jump": None,
                "world": None,
                "video": None,
            }
            if cs and all(c is not None for c in cs):
                cj = metrics.chunk_boundary_jumps(a, [bool(c) for c in cs])
                rec["chunk_jump"] = {k: _nan_to_none(v) for k, v in cj.items()}
                rec["n_chunks"] = int(sum(bool(c) for c in cs))
            if runner.horizon and obs_arr is not None:
                preds = {t: p[i] for t, p in predicted.items() if t < L}
                correct, copy_correct, count = metrics.world_accuracy_counts(obs_arr[i, :L], preds, runner.horizon)
                rec["world"] = {
                    "correct": correct.tolist(),
                    "copy_correct": copy_correct.tolist(),  # copy baseline hits on the same pairs
                    "count": count.tolist(),
                }
            if videos_dir is not None and e < max_videos:
                rec["video"] = f"videos/{suite}_task{task_id:02d}_ep{e:03d}.mp4"
            episodes.append(rec)
        if progress is not None:
            progress.update(min(B, n_episodes - first))
            n_s = sum(r["success"] for r in episodes)
            progress.set_postfix(task=f"{suite}/{task_id}", success=f"{n_s}/{len(episodes)}")
    return episodes


def _nan_to_none(x):
    return None if isinstance(x, float) and not math.isfinite(x) else x


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


def _prepare_output_dir(cfg: EvalSimConfig, policy_type: str) -> tuple[Path, Path]:
    if cfg.output_dir is None:
        now = dt.datetime.now()
        suite = str(cfg.env.task).replace(",", "+")
        cfg.output_dir = Path("outputs/eval_sim") / f"{now:%Y-%m-%d}" / f"{now:%H-%M-%S}_{policy_type}_{suite}"
    out = Path(cfg.output_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not cfg.overwrite:
        raise EvalSimError(f"--output_dir={out} already exists and is not empty: pass a new directory or --overwrite=true.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return out, tmp


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
    if policy is None:
        policy = load_policy(policy_path, env_cfg, cfg.device, policy_overrides)
    runner = _Runner(policy, env_cfg, cfg.corruption)
    use_async = cfg.use_async_envs and cfg.batch_size > 1
    if use_async and runner.needs_env:
        raise EvalSimError("this policy reads the simulator directly (needs_env=True): it needs --use_async_envs=false.")

    out_dir, tmp = _prepare_output_dir(cfg, runner.type)
    set_seed(cfg.seed)
    started = time.time()
    envs = None
    try:
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
        (tmp / "results.json").write_text(json.dumps(results, indent=2))
        (tmp / "results.md").write_text(render_markdown(results))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if envs is not None:
            try:
                close_envs(envs)
            except Exception:  # noqa: BLE001 - already closed per task
                pass
    results["output_dir"] = str(out_dir)
    return results


def summarize(cfg, runner: _Runner, episodes, timing: Timing, max_steps, command, started, env_cfg) -> dict:
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
        },
        "success_grid": grid,
        "overall": overall,
        "per_suite": per_suite,
        "per_task": per_task,
        "episodes": episodes,
        "throughput": timing.as_dict(),
        "versions": _versions(),
    }


def _fmt(x, pct=False, nd=3):
    if x is None:
        return "–"
    if pct:
        return f"{100 * x:.1f}%"
    return f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def render_markdown(r: dict) -> str:
    """Human-readable twin of results.json."""
    L = [f"# eval_sim: {r['policy']['type']} on {', '.join(r['env']['suites'])}", ""]
    L += [f"- command: `{r['command']}`" if r["command"] else "- command: (Python API)"]
    L += [
        f"- policy: {r['policy'].get('path') or r['policy']['type']}"
        + (f" (variant {r['policy']['variant']})" if r["policy"].get("variant") else ""),
        f"- episodes: {r['n_episodes']} ({r['n_episodes_per_task']} per task), init states "
        f"{r['init_state_start']}..{r['init_state_start'] + r['n_episodes_per_task'] - 1}, seeds {r['seed']}+episode, "
        f"max_steps {r['env']['max_steps']}, images {r['env']['observation_size'][0]}x{r['env']['observation_size'][1]}, "
        f"corruption {r['corruption']}",
        f"- created {r['created']}, wall {r['wall_s']:.0f} s",
        "",
        "## Success",
        "",
        "| scope | task | success | rate | 95% CI (Wilson) | mean len | goal frac | jerk | jump@chunk | jump in chunk |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def row(scope, task, a):
        ci = a["ci95"]
        return (
            f"| {scope} | {task} | {a['n_success']}/{a['n_episodes']} | {_fmt(a['success_rate'], True)} | "
            f"{'–' if not ci else f'{100 * ci[0]:.1f}–{100 * ci[1]:.1f}%'} | {_fmt(a['mean_length'], nd=1)} | "
            f"{_fmt(a['goal_fraction'], True)} | {_fmt(a['jerk'], nd=4)} | {_fmt(a['chunk_jump_boundary'], nd=4)} | "
            f"{_fmt(a['chunk_jump_within'], nd=4)} |"
        )

    for t in r["per_task"]:
        L.append(row(f"{t['suite']} #{t['task_id']}", t["task"], t))
    for s, a in r["per_suite"].items():
        L.append(row(f"**{s}**", f"{a['n_tasks']} tasks", a))
    grid = r["success_grid"]
    L += ["", "## Success within T steps", "", "| scope | " + " | ".join(f"T={t}" for t in grid) + " |"]
    L.append("|---|" + "---|" * len(grid))
    for t in r["per_task"]:
        L.append(f"| {t['suite']} #{t['task_id']} | " + " | ".join(_fmt(t["success_within"].get(str(g)), True) for g in grid) + " |")
    for s, a in r["per_suite"].items():
        L.append(f"| **{s}** | " + " | ".join(_fmt(a["success_within"].get(str(g)), True) for g in grid) + " |")
    wa = r["overall"].get("world_accuracy")
    if wa:
        ks = list(wa)
        L += ["", "## Closed-loop world accuracy (token predicted at t for t+k vs observed at t+k)", ""]
        L += ["Copy = the token observed at t equals the one observed at t+k, on the same pairs (\"no change\").", ""]
        L += ["| scope | predictor | " + " | ".join(f"k={k}" for k in ks) + " |", "|---|---|" + "---|" * len(ks)]

        def world_rows(scope, a):
            copy = a.get("world_copy_baseline") or {}
            return [
                f"| {scope} | model | " + " | ".join(_fmt(a["world_accuracy"][k], True) for k in ks) + " |",
                f"| {scope} | copy | " + " | ".join(_fmt(copy.get(k), True) for k in ks) + " |",
            ]

        for t in r["per_task"]:
            L += world_rows(f"{t['suite']} #{t['task_id']}", t)
        L += world_rows("**all**", r["overall"])
        L.append("| pairs | | " + " | ".join(str(r["overall"]["world_pairs"][k]) for k in ks) + " |")
    th = r["throughput"]
    L += [
        "",
        "## Throughput",
        "",
        f"- env steps: {th['env_steps']}; with policy {_fmt(th['env_steps_per_s'], nd=2)} steps/s, "
        f"without policy {_fmt(th['env_steps_per_s_without_policy'], nd=2)} steps/s, "
        f"env alone {_fmt(th['env_only_steps_per_s'], nd=2)} steps/s",
        f"- time: env {th['env_s']:.1f} s, policy {th['policy_s']:.1f} s, harness {th['harness_s']:.1f} s "
        f"(harness/env {_fmt(th['harness_overhead_vs_env'], True)}), resets {th['reset_s']:.1f} s",
        "",
        "## Episodes",
        "",
        "| task | ep | init | seed | success | length | goal predicates | video |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in r["episodes"]:
        preds = ", ".join(("✓ " if p["satisfied"] else "✗ ") + p["predicate"] for p in e["goal_predicates"])
        vid = f"[mp4]({e['video']})" if e["video"] else ""
        L.append(
            f"| {e['suite']} #{e['task_id']} | {e['episode_index']} | {e['init_state_id']} | {e['seed']} | "
            f"{'yes' if e['success'] else 'no'} | {e['length']} | {preds} | {vid} |"
        )
    defs = r["metric_definitions"]
    L += ["", "## Definitions", ""] + [f"- {k}: {v}" for k, v in defs.items()]
    return "\n".join(L) + "\n"


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
    try:
        cfg = draccus.parse(EvalSimConfig, args=rest)
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001
        sys.exit(f"error: {e}")
    env_size_given = any(a.startswith(("--env.observation_height", "--env.observation_width")) for a in rest)
    if cfg.scripted_expert and not env_size_given:  # no checkpoint to take the size from: the dataset schema's
        cfg.env = _rebuild_env_cfg(cfg.env, observation_height=256, observation_width=256)
    command = "lerobot-world eval-sim " + shlex.join(argv)
    try:
        results = evaluate(
            cfg, policy_path=policy_path, policy_overrides=overrides, command=command, env_size_given=env_size_given
        )
    except EvalSimError as e:
        sys.exit(f"error: {e}")
    o = results["overall"]
    ci = o["ci95"]
    print(
        f"eval_sim: success {o['n_success']}/{o['n_episodes']} ({_fmt(o['success_rate'], True)}, 95% CI "
        f"{'–' if not ci else f'{100 * ci[0]:.1f}–{100 * ci[1]:.1f}%'}); results in {results['output_dir']}/results.json, "
        f"results.md, videos/"
    )
    return results


if __name__ == "__main__":
    main()
