"""The policies eval-sim can run, and one interface over them.

A LeRobot checkpoint (loaded with its processor chain, as lerobot-eval does) or a :class:`SimPolicy`
such as the scripted expert; ``PolicyRunner`` hides the difference from the rollout loop. Separate from
the loop so other tools (token-agreement, benchmarks) load policies exactly as eval-sim does.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from eval_sim.errors import EvalSimError
from lerobot_world.devices import resolve_device
from lerobot_world.policy.precision import policy_autocast


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
        import lerobot_world.policy.configuration_world_vla  # noqa: F401
    except ImportError:
        pass


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


class PolicyRunner:
    """One interface over a LeRobot policy (full processor chain) and a SimPolicy.

    ``act`` returns numpy actions (B, 7) plus per-step extras: whether a new action chunk started and,
    for world_vla, the observed token [B] and predicted tokens [B, K] (or None). When a new prediction
    came with top-5 tokens (the policy's ``last_world_predicted_top5``, [B, K, 5]), ``last_predicted_top5``
    holds them as numpy until the next call (None otherwise).
    """

    def __init__(self, policy: LoadedPolicy | SimPolicy, env_cfg, corruption: str = "none"):
        import torch

        self.torch = torch
        self.loaded = policy if isinstance(policy, LoadedPolicy) else None
        self.sim = None if self.loaded else policy
        if self.loaded is None:
            if not callable(policy):
                raise EvalSimError(f"policy {policy!r} is neither a LeRobot checkpoint nor a callable SimPolicy.")
            if corruption != "none":
                raise EvalSimError(f"--corruption={corruption} needs a world_vla policy; a scripted policy has no world input.")
            self.env_pre, self.env_post = env_cfg.get_env_processors()
            self.needs_env = bool(getattr(policy, "needs_env", False))
            self.type = getattr(policy, "name", type(policy).__name__)
            self.horizon = None
            self.last_predicted_top5 = None
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
        self.last_predicted_top5 = None

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
        with torch.inference_mode(), policy_autocast(lp.policy.config, lp.policy.config.device):
            action = lp.policy.select_action(batch)
        # Under a use_amp checkpoint's autocast the action head answers in bf16 (as in lerobot-eval); the
        # postprocessors and the env take float32 (numpy has no bf16).
        action = action.float()
        observed = predicted = None
        self.last_predicted_top5 = None
        if self.horizon:
            o = getattr(lp.policy, "last_world_observed", None)
            observed = None if o is None else o.detach().cpu().numpy().astype(np.int64)
            pr = getattr(lp.policy, "last_world_predicted", None)
            if pr is not None and pr is not self._last_pred:
                predicted = pr.detach().cpu().numpy().astype(np.int64)
                top5 = getattr(lp.policy, "last_world_predicted_top5", None)
                if top5 is not None:
                    self.last_predicted_top5 = top5.detach().cpu().numpy().astype(np.int64)
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
