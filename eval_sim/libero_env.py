"""LIBERO-side instrumentation of LeRobot's vector envs for eval-sim.

Offline LIBERO set-up, the BDDL goal-predicate probe, freezing finished sub-envs, and request checks
against LIBERO's benchmark: everything that touches the simulator, apart from the policy and the loop.
"""

from collections.abc import Callable
from functools import partial

import numpy as np

from eval_sim.errors import EvalSimError


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


def set_env_attr(vec, name: str, values: list) -> None:
    if hasattr(vec, "set_attr"):
        vec.set_attr(name, values)
    else:  # LeRobot's _LazyAsyncVectorEnv forwards only reset/step/call/get_attr
        vec._ensure()
        vec._env.set_attr(name, values)


def step_successes(info: dict, n: int) -> np.ndarray:
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
