"""Full `lerobot-train` step (data + update) of LeRobot's ACT in fp32 vs world_vla A and C, on a real
LIBERO demo dataset, in one run on this machine.

Each model is trained for `--steps` steps by the real `lerobot-train` (same trunk, batch, images, loader
workers); the step time is LeRobot's own logged `updt_s + data_s`, averaged over the log intervals after
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


def train_and_read(name: str, policy_args: list[str], args, out: Path) -> dict:
    cmd = [str(BIN / "lerobot-train"), *policy_args,
           f"--dataset.repo_id={args.repo_id}", f"--dataset.root={args.dataset_root}",
           f"--output_dir={out}", f"--steps={args.steps}", f"--batch_size={args.batch_size}",
           f"--num_workers={args.num_workers}", f"--log_freq={args.log_freq}", "--save_checkpoint=false",
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
    parser.add_argument("--num_workers", type=int, default=1)
    parser.add_argument("--world_amp", default="true", choices=["true", "false"], help="world_vla under bf16 autocast")
    parser.add_argument("--output", default=None, help="also write the numbers as JSON here")
    args = parser.parse_args()
    if not (Path(args.dataset_root) / "meta" / "info.json").is_file():
        sys.exit(f"error: --dataset_root={args.dataset_root} is not a LeRobotDataset (no meta/info.json).")

    with tempfile.TemporaryDirectory() as tmp:
        table = args.world_tokens
        if table is None:
            table = str(Path(tmp) / "table")
            rc = subprocess.call([str(BIN / "lerobot-world"), "tokenize", f"--dataset.repo_id={args.repo_id}",
                                  f"--dataset.root={args.dataset_root}", "--vocab_size=64", "--eval_split=0.2",
                                  f"--output_dir={table}"], stdout=subprocess.DEVNULL)
            if rc != 0:
                sys.exit("error: tokenize failed")
        trunk = [_flag(k, v) for k, v in TRUNK.items()]
        amp = f"--policy.use_amp={args.world_amp}"
        models = {
            "ACT fp32": ["--policy.type=act", *trunk, "--policy.use_amp=false"],
            "world_vla A": ["--policy.type=world_vla", "--policy.variant=A", *trunk, amp],
            "world_vla C": ["--policy.type=world_vla", "--policy.variant=C", f"--policy.world_tokens={table}",
                            *trunk, *[_flag(k, v) for k, v in WORLD.items()], amp],
        }
        runs = {name: [] for name in models}
        for r in range(args.rounds):
            for name, policy_args in models.items():
                res = train_and_read(name, policy_args, args, Path(tmp) / f"{name.replace(' ', '_')}_{r}")
                print(f"round {r} {name}: {res['step_s']:.3f} s/step (data {res['data_s']:.3f})", flush=True)
                runs[name].append(res)

    base = statistics.median(x["step_s"] for x in runs["ACT fp32"])
    summary = {}
    print(f"\nlerobot-train step, batch {args.batch_size}, {args.num_workers} loader worker(s), dataset "
          f"{args.repo_id}; world_vla use_amp={args.world_amp}; median over {args.rounds} round(s) of "
          f"{args.steps} steps (first log interval dropped)")
    print(f"{'model':<13} {'s/step':>8} {'data_s':>8} {'data %':>7} {'x ACT-fp32 steps/s':>19}")
    for name, rs in runs.items():
        step = statistics.median(x["step_s"] for x in rs)
        data = statistics.median(x["data_s"] for x in rs)
        summary[name] = {"step_s": step, "data_s": data, "data_fraction": data / step, "speedup_vs_act_fp32": base / step,
                         "rounds": rs}
        print(f"{name:<13} {step:>8.3f} {data:>8.3f} {100 * data / step:>6.1f}% {base / step:>19.2f}")
    if args.output:
        Path(args.output).write_text(json.dumps({"args": vars(args), "trunk": TRUNK, "world": WORLD,
                                                 "results": summary}, indent=2))
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
