#!/usr/bin/env python
"""Where one LIBERO env step's time goes on this machine: camera rendering vs everything else.

    .venv/bin/python scripts/bench_env_step.py [--suite=libero_10] [--task_id=0] [--size=96] \\
        [--steps=60] [--output=F.json]

One LeRobot LiberoEnv (the env eval-sim and lerobot-evaluate use), zero actions after a reset. It times the
full `env.step` (robosuite's 25 physics substeps with the OSC controller, both cameras rendered at
--size, the BDDL success check) and, on the same state, rendering the two cameras alone. Without a GPU,
MuJoCo's EGL backend renders with Mesa's llvmpipe on the CPU: the renderer string is printed so the
numbers are read with it. The closed-loop episode rate (scripts/bench_closed_loop.py) is bounded by this
step, since the policy runs once per action chunk.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# Headless rendering as eval-sim runs it; PyOpenGL must name the same platform or EGL finds no device display.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

CAMERAS = ("agentview", "robot0_eye_in_hand")  # LIBERO's two cameras, both read by the policies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="libero_10")
    parser.add_argument("--task_id", type=int, default=0)
    parser.add_argument("--size", type=int, default=96, help="camera height and width (the policy's input size)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--output", default=None, help="also write the numbers as JSON here")
    args = parser.parse_args()
    if args.steps < 1 or args.size < 1:
        sys.exit(f"error: --steps and --size must be >= 1, got {args.steps} and {args.size}.")

    from eval_sim.libero_env import prepare_libero

    prepare_libero()
    from lerobot.envs import make_env
    from lerobot.envs.configs import LiberoEnv
    from OpenGL import GL

    cfg = LiberoEnv(task=args.suite, task_ids=[args.task_id], observation_height=args.size, observation_width=args.size)
    vec = make_env(cfg, n_envs=1, use_async_envs=False)[args.suite][args.task_id]
    vec.reset(seed=[0])
    action = np.zeros((1, 7), dtype=np.float32)
    for _ in range(5):  # warm-up
        vec.step(action)
    sim = vec.envs[0].unwrapped._env.env.sim

    t0 = time.perf_counter()
    for _ in range(args.steps):
        vec.step(action)
    step_s = (time.perf_counter() - t0) / args.steps
    t0 = time.perf_counter()
    for _ in range(args.steps):
        for cam in CAMERAS:
            sim.render(camera_name=cam, width=args.size, height=args.size)
    render_s = (time.perf_counter() - t0) / args.steps
    renderer = GL.glGetString(GL.GL_RENDERER).decode()
    vec.close()

    result = {
        "args": vars(args),
        "renderer": renderer,
        "step_ms": round(1e3 * step_s, 2),
        "render_two_cameras_ms": round(1e3 * render_s, 2),
        "rest_ms": round(1e3 * (step_s - render_s), 2),
        "render_share": round(render_s / step_s, 3),
        "command": ".venv/bin/python " + " ".join(["scripts/bench_env_step.py", *sys.argv[1:]]),
    }
    print(f"renderer: {renderer}")
    print(f"{args.suite} task {args.task_id}, {args.size}x{args.size}: env step {result['step_ms']} ms, of which "
          f"rendering both cameras {result['render_two_cameras_ms']} ms ({100 * result['render_share']:.0f}%), "
          f"physics + controller + success check {result['rest_ms']} ms")
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
