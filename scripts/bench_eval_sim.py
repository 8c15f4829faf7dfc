#!/usr/bin/env python
"""Throughput of eval_sim on this machine: env steps/s with and without the policy, harness overhead.

    MUJOCO_GL=egl python scripts/bench_eval_sim.py [--policy_path=CKPT] [--steps=100] [--image_size=256]

Three measurements on one LIBERO task (libero_object task 0 by default), one env, same step count:
1. raw env: LeRobot's vector env stepped in a bare loop with a no-op action (no harness at all);
2. harness, no policy: eval_sim's rollout loop with a no-op scripted policy (videos on, as in real runs);
3. harness + policy (if --policy_path): a checkpoint through its full processor chain.
The harness overhead is its time outside env.step and outside the policy call, relative to env.step time
(target < 10%).
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


class NoOp:
    """Scripted policy that holds still (gripper open): costs nothing, never succeeds."""

    name = "noop"

    def __call__(self, observation, ctx):
        a = np.zeros((len(ctx.task), 7), dtype=np.float32)
        a[:, 6] = -1.0
        return a


def raw_env_steps_per_s(env_cfg, steps: int) -> float:
    from lerobot.envs import close_envs, make_env

    envs = make_env(env_cfg, n_envs=1)
    vec = next(iter(next(iter(envs.values())).values()))
    vec.reset(seed=[0])
    a = np.zeros((1, 7), dtype=np.float32)
    a[:, 6] = -1.0
    t0 = time.perf_counter()
    for _ in range(steps):
        vec.step(a)
    dt = time.perf_counter() - t0
    close_envs(envs)
    return steps / dt


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--policy_path", default=None)
    ap.add_argument("--suite", default="libero_object")
    ap.add_argument("--task_id", type=int, default=0)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--image_size", type=int, default=None, help="default: the policy's, else 256")
    ap.add_argument("--video", default="true", choices=["true", "false"])
    args = ap.parse_args(argv)

    from lerobot.envs.configs import LiberoEnv

    from eval_sim.evaluate import EvalSimConfig, evaluate
    from eval_sim.libero_env import prepare_libero
    from eval_sim.policies import load_policy_config, policy_image_size

    prepare_libero()
    size = args.image_size
    if size is None and args.policy_path:
        hw = policy_image_size(load_policy_config(args.policy_path))
        size = hw[0] if hw else None
    size = size or 256
    env_cfg = LiberoEnv(
        task=args.suite, task_ids=[args.task_id], episode_length=args.steps, observation_height=size, observation_width=size
    )
    rows = {}
    rows["raw env (no harness)"] = {"env_steps_per_s": raw_env_steps_per_s(env_cfg, args.steps)}
    with tempfile.TemporaryDirectory() as tmp:
        common = dict(env=env_cfg, n_episodes_per_task=1, max_steps=args.steps, video=args.video == "true", max_videos_per_task=1)
        r = evaluate(EvalSimConfig(output_dir=Path(tmp) / "noop", **common), policy=NoOp(), env_size_given=True)
        rows["eval_sim, no-op policy"] = r["throughput"]
        if args.policy_path:
            r = evaluate(
                EvalSimConfig(output_dir=Path(tmp) / "policy", **common),
                policy_path=args.policy_path,
                env_size_given=True,
            )
            rows[f"eval_sim + {r['policy']['type']}"] = r["throughput"]

    print(f"\nLIBERO {args.suite} task {args.task_id}, {args.steps} steps, {size}x{size} px, two cameras, video={args.video}")
    print(f"{'run':<28} {'steps/s':>8} {'w/o policy':>10} {'env alone':>9} {'harness/env':>11} {'policy s/step':>13}")
    for name, t in rows.items():
        if "env_steps" not in t:
            print(f"{name:<28} {t['env_steps_per_s']:8.2f} {'':>10} {t['env_steps_per_s']:9.2f} {'':>11} {'':>13}")
            continue
        print(
            f"{name:<28} {t['env_steps_per_s']:8.2f} {t['env_steps_per_s_without_policy']:10.2f} "
            f"{t['env_only_steps_per_s']:9.2f} {100 * t['harness_overhead_vs_env']:10.1f}% "
            f"{t['policy_s'] / max(1, t['env_steps']):13.4f}"
        )
    print(json.dumps(rows, indent=1, default=float))


if __name__ == "__main__":
    main()
