"""Full `lerobot-train` step (data + update) of LeRobot's ACT in fp32 vs world_vla A and C, on a real
LIBERO demo dataset, in one run on this machine.

Each model is trained for `--steps` steps by the real `lerobot-train` (same trunk, batch, images, loader
workers by default; see --world_frames); the step time is LeRobot's own logged `updt_s + data_s`, averaged over the log intervals after
the first (warm-up). Rounds run the models in turn (ACT, A, C, ACT, A, C, ...) so machine noise hits every
model alike. Prints steps/s relative to ACT-fp32 and the share of the step spent waiting for data.
Targets (issue: CPU throughput): world_vla C >= 2.0x ACT-fp32 steps/s; data_s < 10% of the step.

    .venv/bin/python scripts/bench_train_step.py [--dataset_root=../shared/data/libero10_demos_96] \\
        [--steps=60] [--rounds=2] [--world_amp=true] [--output=bench_train_step.json]
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STEP_LINE = re.compile(r"step:(\S+) .*updt_s:([\d.]+) data_s:([\d.]+)")
# The CPU trunk of configs/policy/cpu_small.json, given to both policies.
TRUNK = {
    "dim_model": 256, "n_heads": 8, "dim_feedforward": 1024, "n_encoder_layers": 2, "n_decoder_layers": 2,
    "n_vae_encoder_layers": 2, "latent_dim": 32, "chunk_size": 20, "n_action_steps": 20,
    "vision_backbone": "resnet18", "pretrained_backbone_weights": None,
}
WORLD = {"future_offset": 8, "world_context": 4}


def _flag(key, value) -> str:
    return f"--policy.{key}={'null' if value is None else value}"


def train_and_read(name: str, policy_args: list[str], data: tuple[str, str, int], args, out: Path) -> dict:
    repo_id, root, workers = data
    cmd = [str(BIN / "lerobot-train"), *policy_args,
           f"--dataset.repo_id={repo_id}", f"--dataset.root={root}",
           f"--output_dir={out}", f"--steps={args.steps}", f"--batch_size={args.batch_size}",
           f"--num_workers={workers}", f"--log_freq={args.log_freq}", "--save_checkpoint=false",
           "--wandb.enable=false", "--seed=0", "--policy.device=cpu", "--policy.push_to_hub=false"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="offline")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        sys.exit(f"error: lerobot-train for {name} failed (exit {proc.returncode}):\n{log[-3000:]}")
    rows = [(float(u), float(d)) for _, u, d in STEP_LINE.findall(log)][1:]  # drop the warm-up interval
    if not rows:
        sys.exit(f"error: no step lines after warm-up in the {name} log; raise --steps above 2 x --log_freq.")
    updt = statistics.mean(u for u, _ in rows)
    data = statistics.mean(d for _, d in rows)
    return {"updt_s": updt, "data_s": data, "step_s": updt + data, "intervals": len(rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_root", default=str((ROOT / ".." / "shared" / "data" / "libero10_demos_96").resolve()))
    parser.add_argument("--repo_id", default="local/libero10_demos_96")
    parser.add_argument("--world_tokens", default=None, help="token table of the dataset (default: tokenize one)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--log_freq", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--num_workers", type=int, default=1, help="loader workers of the stock ACT-fp32 run")
    parser.add_argument("--world_frames", default="images", choices=["images", "videos"],
                        help="world_vla reads the image-storage copy (lerobot-world decode-videos) or the videos")
    parser.add_argument("--image_copy", default=None,
                        help="where the image-storage copy is (made if missing; default ~/.cache/lerobot-world/<name>_images)")
    parser.add_argument("--world_num_workers", type=int, default=0, help="loader workers of the world_vla runs")
    parser.add_argument("--world_amp", default="true", choices=["true", "false"], help="world_vla under bf16 autocast")
    parser.add_argument("--output", default=None, help="also write the numbers as JSON here")
    args = parser.parse_args()
    if not (Path(args.dataset_root) / "meta" / "info.json").is_file():
        sys.exit(f"error: --dataset_root={args.dataset_root} is not a LeRobotDataset (no meta/info.json).")

    video_data = (args.repo_id, args.dataset_root, args.num_workers)
    world_data = (args.repo_id, args.dataset_root, args.world_num_workers)
    if args.world_frames == "images":
        copy = Path(args.image_copy or Path.home() / ".cache" / "lerobot-world" / f"{Path(args.dataset_root).name}_images")
        rc = subprocess.call([str(BIN / "lerobot-world"), "decode-videos", f"--dataset.repo_id={args.repo_id}",
                              f"--dataset.root={args.dataset_root}", f"--output_dir={copy}"])
        if rc != 0:
            sys.exit(f"error: decode-videos into {copy} failed (exit {rc})")
        world_data = (f"{args.repo_id}_images", str(copy), args.world_num_workers)

    with tempfile.TemporaryDirectory() as tmp:
        table = args.world_tokens
        if table is None:
            table = str(Path(tmp) / "table")
            rc = subprocess.call([str(BIN / "lerobot-world"), "tokenize", f"--dataset.repo_id={world_data[0]}",
                                  f"--dataset.root={world_data[1]}", "--vocab_size=64", "--eval_split=0.2",
                                  f"--output_dir={table}"], stdout=subprocess.DEVNULL)
            if rc != 0:
                sys.exit("error: tokenize failed")
        trunk = [_flag(k, v) for k, v in TRUNK.items()]
        amp = f"--policy.use_amp={args.world_amp}"
        # name -> (policy flags, (repo_id, root, loader workers)). "ACT fp32" is what a user runs by default
        # (video dataset); "ACT fp32, world data" isolates the input pipeline from the model.
        models = {
            "ACT fp32": (["--policy.type=act", *trunk, "--policy.use_amp=false"], video_data),
            "world_vla A": (["--policy.type=world_vla", "--policy.variant=A", *trunk, amp], world_data),
            "world_vla C": (["--policy.type=world_vla", "--policy.variant=C", f"--policy.world_tokens={table}",
                             *trunk, *[_flag(k, v) for k, v in WORLD.items()], amp], world_data),
        }
        if world_data != video_data:
            models["ACT fp32, world data"] = (models["ACT fp32"][0], world_data)
        runs = {name: [] for name in models}
        for r in range(args.rounds):
            for name, (policy_args, data) in models.items():
                res = train_and_read(name, policy_args, data, args, Path(tmp) / f"{name.replace(' ', '_')}_{r}")
                print(f"round {r} {name}: {res['step_s']:.3f} s/step (data {res['data_s']:.3f})", flush=True)
                runs[name].append(res)

    base = statistics.median(x["step_s"] for x in runs["ACT fp32"])
    summary = {}
    print(f"\nlerobot-train step, batch {args.batch_size}, dataset {args.repo_id}; ACT fp32: videos, "
          f"{args.num_workers} loader worker(s); world_vla: {args.world_frames}, {args.world_num_workers} worker(s), "
          f"use_amp={args.world_amp}; median over {args.rounds} round(s) of "
          f"{args.steps} steps (first log interval dropped)")
    print(f"{'model':<21} {'s/step':>8} {'data_s':>8} {'data %':>7} {'x ACT-fp32 steps/s':>19}")
    for name, rs in runs.items():
        step = statistics.median(x["step_s"] for x in rs)
        data = statistics.median(x["data_s"] for x in rs)
        summary[name] = {"step_s": step, "data_s": data, "data_fraction": data / step, "speedup_vs_act_fp32": base / step,
                         "rounds": rs}
        print(f"{name:<21} {step:>8.3f} {data:>8.3f} {100 * data / step:>6.1f}% {base / step:>19.2f}")
    if args.output:
        Path(args.output).write_text(json.dumps({"args": vars(args), "trunk": TRUNK, "world": WORLD,
                                                 "results": summary}, indent=2))
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
