#!/usr/bin/env python
"""Closed-loop episodes per hour: `lerobot-world eval-sim` with the project's settings vs stock `lerobot-eval`,
same checkpoint, suite, task, episode count and step limit, in one run on this machine.

    MUJOCO_GL=egl .venv/bin/python scripts/bench_closed_loop.py --policy_path=CKPT/pretrained_model \\
        [--suite=libero_object] [--task_id=0] [--episodes=4] [--max_steps=300] [--batch_size=2] [--output=F.json]

Both commands render LIBERO at the policy's input size (`lerobot-eval` is given
`--env.observation_height/width` = that size, which a user must pass for a checkpoint trained on small
images) and run on the CPU. `lerobot-eval` keeps its defaults otherwise (vector-env batch auto-sized,
rollout videos). eval-sim runs `--batch_size` envs in subprocesses, no videos. The time is each command's
wall time from start to exit (imports and env start-up included, as a user waits for them). Target (issue:
CPU throughput): eval-sim >= 1.5x lerobot-eval episodes per hour. Successes are printed beside the rate:
the two harnesses seed their episodes differently, so they need not match episode by episode.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
BIN = Path(sys.executable).parent


def _timed(cmd: list[str], env: dict) -> float:
    """Wall seconds of one command, start to exit; exits with its log tail if it fails."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"error: {Path(cmd[0]).name} failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy_path", required=True, help="a pretrained_model directory")
    parser.add_argument("--suite", default="libero_object")
    parser.add_argument("--task_id", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--max_steps", type=int, default=300)
    parser.add_argument("--batch_size", type=int, default=2, help="eval-sim's parallel envs")
    parser.add_argument("--output", default=None, help="also write the numbers as JSON here")
    args = parser.parse_args()
    ckpt = Path(args.policy_path)
    if not (ckpt / "config.json").is_file():
        sys.exit(f"error: --policy_path={ckpt} is not a pretrained_model directory (no config.json).")
    from lerobot.configs.policies import PreTrainedConfig

    import lerobot_world.policy.configuration_world_vla  # noqa: F401  (registers world_vla for the config parser)
    from eval_sim.policies import policy_image_size

    size = policy_image_size(PreTrainedConfig.from_pretrained(ckpt))
    if size is None:
        sys.exit(f"error: {ckpt}: the policy's cameras differ in size; expected one input image size.")
    height, width = size
    env = dict(os.environ, HF_HUB_OFFLINE="1", MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        stock = [str(BIN / "lerobot-eval"), f"--policy.path={ckpt}", "--policy.device=cpu", "--env.type=libero",
                 f"--env.task={args.suite}", f"--env.task_ids=[{args.task_id}]", f"--env.episode_length={args.max_steps}",
                 f"--env.observation_height={height}", f"--env.observation_width={width}",
                 f"--eval.n_episodes={args.episodes}", f"--output_dir={Path(tmp) / 'lerobot_eval'}"]
        ours = [str(BIN / "lerobot-world"), "eval-sim", f"--policy.path={ckpt}", "--device=cpu",
                f"--env.task={args.suite}", f"--env.task_ids=[{args.task_id}]", f"--max_steps={args.max_steps}",
                f"--n_episodes_per_task={args.episodes}", f"--batch_size={args.batch_size}",
                "--use_async_envs=true", "--video=false", "--allow_training_init_states=true",
                f"--output_dir={Path(tmp) / 'eval_sim'}"]
        for name, cmd in (("lerobot-eval", stock), ("eval-sim", ours)):
            print(f"$ {' '.join(cmd)}", flush=True)
            wall = _timed(cmd, env)
            if name == "eval-sim":
                res = json.loads((Path(tmp) / "eval_sim" / "results.json").read_text())
                succ = int(res["overall"]["n_success"])
            else:
                info = json.loads((Path(tmp) / "lerobot_eval" / "eval_info.json").read_text())
                succ = round(info["overall"]["pc_success"] * args.episodes / 100)
            results[name] = {"wall_s": wall, "episodes": args.episodes, "episodes_per_hour": 3600 * args.episodes / wall,
                             "successes": succ}
            print(f"  {name}: {wall:.0f} s for {args.episodes} episodes = {results[name]['episodes_per_hour']:.0f} "
                  f"episodes/h, successes {succ}", flush=True)
    ratio = results["eval-sim"]["episodes_per_hour"] / results["lerobot-eval"]["episodes_per_hour"]
    print(f"\n{args.suite} task {args.task_id}, {args.episodes} episodes x <= {args.max_steps} steps, {height}x{width} px: "
          f"eval-sim ({args.batch_size} async envs, no video) / lerobot-eval = {ratio:.2f}x episodes per hour")
    if args.output:
        Path(args.output).write_text(json.dumps({"args": vars(args), "results": results, "ratio": ratio}, indent=2))
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
