"""Physics-only LIBERO episodes for measuring the scripted expert (no cameras: ~10x cheaper than rendering).

The reset reproduces LeRobot's ``LiberoEnv.reset`` exactly (seed, LIBERO reset, fixed init state,
10 settle steps with the dummy action, delta control), so the success rate measured here is the one
the recorded (rendered) episodes and the closed-loop harness see; rendering does not touch physics.
"""

import os
import time

import numpy as np

from eval_sim.libero_assets import ensure_libero_ready

SETTLE_STEPS = 10  # LeRobot's LiberoEnv num_steps_wait


def suite_and_task(suite_name: str, task_id: int):
    ensure_libero_ready()
    from lerobot.envs.libero import _get_suite

    suite = _get_suite(suite_name)
    if not 0 <= task_id < suite.n_tasks:
        raise ValueError(f"task id {task_id} is out of range for {suite_name} (0..{suite.n_tasks - 1}).")
    return suite, suite.get_task(task_id)


def make_physics_env(suite_name: str, task_id: int):
    """(LIBERO ControlEnv without renderer, init states (N, D), task language)."""
    suite, task = suite_and_task(suite_name, task_id)
    from lerobot.envs.libero import get_task_init_states
    from libero.libero import get_libero_path
    from libero.libero.envs.env_wrapper import ControlEnv

    bddl = os.path.join(get_libero_path("bddl_files"), task.problem_folder, task.bddl_file)
    env = ControlEnv(
        bddl_file_name=bddl, has_renderer=False, has_offscreen_renderer=False, use_camera_obs=False,
        camera_heights=8, camera_widths=8, control_freq=20,
    )
    return env, get_task_init_states(suite, task_id), task.language


def reset_like_lerobot(env, init_state: np.ndarray | None, seed: int | None) -> None:
    from lerobot.envs.libero import get_libero_dummy_action

    env.seed(seed)
    env.reset()
    if init_state is not None:
        env.set_init_state(init_state)
    for _ in range(SETTLE_STEPS):
        env.step(get_libero_dummy_action())
    for robot in env.robots:
        robot.controller.use_delta = True


def run_expert_episode(env, expert, max_steps: int) -> tuple[bool, int]:
    """Roll the expert until success or `max_steps`; returns (success, steps)."""
    expert.reset()
    for t in range(1, max_steps + 1):
        env.step(expert.act(env))
        if env.check_success():
            return True, t
    return False, max_steps


def measure(suite_name: str, task_id: int, init_ids, max_steps: int, seed: int = 0, verbose=False) -> list[dict]:
    """One physics-only expert episode per init state id."""
    from eval_sim.scripted_expert import ScriptedExpert

    env, inits, _ = make_physics_env(suite_name, task_id)
    expert = ScriptedExpert()
    out = []
    for i in init_ids:
        t0 = time.perf_counter()
        reset_like_lerobot(env, inits[i % len(inits)], seed + i)
        ok, steps = run_expert_episode(env, expert, max_steps)
        rec = {"init_id": int(i), "success": bool(ok), "steps": int(steps), "seconds": time.perf_counter() - t0,
               "end_phase": expert.s.phase, "attempts": expert.s.attempts}
        if verbose:
            print(suite_name, task_id, rec, flush=True)
        out.append(rec)
    env.close()
    return out
