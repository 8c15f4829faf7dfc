"""The main job (`make demo`): scripted LIBERO demonstrations -> world tokens -> the four arms ->
offline evaluation with corruption -> closed-loop LIBERO evaluation with videos and closed-loop
corruption for C -> REPORT.md.

The budget (steps, episodes, suite and task) lives in configs/matrix/demo.yaml; the flags below only
override it. Each stage is one of the project's own commands (printed before it runs) and is skipped when
its outputs already exist, so re-running the same command after an interruption continues where it
stopped (a training resumes from its last checkpoint). Everything runs offline on CPU.

    .venv/bin/python scripts/quickstart.py [--output_dir=outputs/demo] [--steps=N] [--sim_episodes=N]
"""

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEMO_CONFIG = ROOT / "configs" / "matrix" / "demo.yaml"


def run(cmd: list[str]) -> float:
    """Run one stage command (exit on failure); return its wall time in seconds."""
    print(f"\n$ {shlex.join(cmd)}", flush=True)
    start = time.time()
    rc = subprocess.call(cmd, cwd=ROOT)
    if rc != 0:
        sys.exit(f"error: stage failed (exit {rc}); re-run the same command to continue.")
    seconds = time.time() - start
    print(f"  done in {seconds:.0f} s", flush=True)
    return seconds


def flag_value(args: list[str], name: str) -> str | None:
    """The value of ``--name=value`` in a command's argument list (the last one wins, as with draccus)."""
    values = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    return values[-1] if values else None


def set_flag(args: list[str], name: str, value) -> list[str]:
    return [a for a in args if not a.startswith(f"--{name}=")] + [f"--{name}={value}"]


def cpu_name() -> str:
    info = Path("/proc/cpuinfo")
    names = [ln.split(":", 1)[1].strip() for ln in info.read_text().splitlines()
             if ln.startswith("model name")] if info.is_file() else []
    return names[0] if names else (platform.processor() or "unknown CPU")


def stage_minutes(out: Path, matrix_dir: Path) -> dict[str, float]:
    """Wall minutes per stage: the demos from timing.json, the rest summed over the runs' state.json (every
    attempt's time, a resumed training included; time lost after an interrupted attempt's last checkpoint is
    not work and is left out)."""
    timing = out / "timing.json"
    seconds = {"demos": json.loads(timing.read_text()).get("demos", 0.0)} if timing.is_file() else {}
    for state_path in sorted((matrix_dir / "runs").glob("*/state.json")):
        for stage, info in json.loads(state_path.read_text()).get("stages", {}).items():
            name = "closed-loop corruption (C)" if stage.startswith("eval_sim_") else stage
            secs = info.get("seconds_total", info.get("seconds"))
            if isinstance(secs, (int, float)):
                seconds[name] = seconds.get(name, 0.0) + secs
    return {k: v / 60 for k, v in seconds.items()}


def main() -> None:
    cfg = yaml.safe_load(DEMO_CONFIG.read_text())
    sim_args = list(cfg["eval_sim"]["extra_args"])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="outputs/demo")
    parser.add_argument("--episodes", type=int, default=20, help="scripted demonstrations to record")
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=None,
                        help=f"training steps per arm (default: demo.yaml's {cfg['overrides']['steps']})")
    parser.add_argument("--sim_episodes", type=int, default=None,
                        help=f"closed-loop episodes per arm (default: demo.yaml's {flag_value(sim_args, 'n_episodes_per_task')})")
    parser.add_argument("--max_steps", type=int, default=None,
                        help="closed-loop step limit per episode (default: LeRobot's limit for the suite)")
    args = parser.parse_args()
    for name in ("episodes", "image_size", "steps", "sim_episodes", "max_steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            sys.exit(f"error: --{name}={value}; expected a positive integer.")

    suite = flag_value(sim_args, "env.task")
    task_ids = json.loads(flag_value(sim_args, "env.task_ids") or "[0]")
    if not suite or len(task_ids) != 1:
        sys.exit(f"error: {DEMO_CONFIG}: eval_sim.extra_args must name one suite and one task "
                 f"(--env.task=..., --env.task_ids=[N]); got {sim_args}.")
    task_id = task_ids[0]

    out = (ROOT / args.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data" / "libero_demo"
    matrix_dir = out / "matrix"
    start = time.time()
    timing_path = out / "timing.json"
    timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
    print(f"lerobot-world main job -> {out}", flush=True)

    # 1. Scripted-expert demonstrations from seeded random placements (successful episodes only; --fill
    #    retries further seeds until there are --episodes of them). Never LIBERO's fixed init states:
    #    eval-sim evaluates from those, and refuses the ones a checkpoint's demos started from.
    print("\n[1/3] scripted demonstrations", flush=True)
    if (data / "meta" / "info.json").is_file():
        res_path = data / "results.json"
        recorded = json.loads(res_path.read_text()).get("config", {}) if res_path.is_file() else {}
        wanted = {"init": "random", "suite": suite, "image_size": args.image_size}
        differs = {k: (recorded.get(k), v) for k, v in wanted.items() if recorded.get(k) != v}
        if differs:
            sys.exit(f"error: {data} holds demos recorded with "
                     + ", ".join(f"{k}={got!r} (expected {want!r})" for k, (got, want) in differs.items())
                     + f"; remove {out} (or pass another --output_dir) and re-run to start over.")
        print(f"  {data} exists, skipped")
    else:
        timing["demos"] = round(timing.get("demos", 0.0) + run(
            [str(BIN / "lerobot-world"), "demos", f"--suite={suite}", f"--task_ids={task_id}",
             f"--episodes_per_task={args.episodes}", f"--image_size={args.image_size}", "--init=random",
             "--fill=true", "--repo_id=local/libero_demo", f"--output_dir={data}", "--num_workers=2"]), 1)
        timing_path.write_text(json.dumps(timing, indent=2) + "\n")

    # 2. Tokens, the four arms, offline evaluation, closed loop and closed-loop corruption for C: the matrix
    #    runner, which resumes an interrupted training from its last checkpoint and skips finished stages.
    print("\n[2/3] world tokens, four arms, offline, closed-loop and corruption evaluation (matrix runner)", flush=True)
    from lerobot_world.policy.precision import cpu_has_bf16_kernels

    cfg["dataset"]["root"] = str(data)
    cfg["output_dir"] = str(matrix_dir)
    if args.steps is not None:
        cfg["overrides"].update({"steps": args.steps, "save_freq": min(args.steps, cfg["overrides"]["save_freq"])})
    if args.sim_episodes is not None:
        sim_args = set_flag(sim_args, "n_episodes_per_task", args.sim_episodes)
    if args.max_steps is not None:
        sim_args = set_flag(sim_args, "max_steps", args.max_steps)
    cfg["eval_sim"]["extra_args"] = sim_args
    if cfg["overrides"].get("policy.use_amp") and not cpu_has_bf16_kernels():
        print("  this CPU has no bf16 kernels (AVX-512 BF16 / AMX): training in fp32 (bf16 would be ~3x slower)")
        cfg["overrides"]["policy.use_amp"] = False
    config_path = out / "matrix_demo.yaml"
    config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    run([str(BIN / "lerobot-world"), "matrix", f"--config={config_path}"])

    # 3. The report, with what the run was and the time each stage took here.
    print("\n[3/3] report", flush=True)
    over = cfg["overrides"]
    n_sim = flag_value(sim_args, "n_episodes_per_task")
    minutes = stage_minutes(out, matrix_dir)
    preamble = (
        f"Main job of lerobot-world on this machine: {args.episodes} scripted demonstrations of {suite} task "
        f"{task_id} from seeded random placements at {args.image_size} px; the four arms with seed 0, "
        f"{over['steps']} training steps each ({'bf16' if over.get('policy.use_amp') else 'fp32'}); {n_sim} "
        f"closed-loop episodes per arm from LIBERO's fixed init states 0..{int(n_sim) - 1} (none a demonstration's "
        "start), and the same episodes for C under each world corruption. One seed and ten episodes per arm: the "
        "intervals are wide, so the tables show that the instrument works, not which arm is better; "
        "configs/matrix/cpu_study.yaml is the study. Every number comes from the commands listed below.\n\n"
        f"Wall time per stage on this machine ({cpu_name()}, {os.cpu_count()} cores): "
        + "; ".join(f"{k} {v:.1f} min" for k, v in minutes.items())
        + f"; {sum(minutes.values()):.1f} min in all."
    )
    (out / "report_preamble.md").write_text(preamble + "\n")
    run([str(BIN / "lerobot-world"), "report", str(matrix_dir), f"--output={out / 'REPORT.md'}",
         "--title=lerobot-world main job", f"--preamble_file={out / 'report_preamble.md'}"])
    videos = sorted(matrix_dir.glob("runs/*/eval_sim*/videos/*.mp4"))
    print(f"\ndone in {(time.time() - start) / 60:.1f} min (this invocation)", flush=True)
    print(f"  report: {out / 'REPORT.md'}")
    print(f"  videos: {len(videos)} MP4 under {matrix_dir / 'runs'}")
    print(f"  wandb offline runs: {matrix_dir / 'runs'}/*/train/wandb (upload with `wandb sync DIR`)")


if __name__ == "__main__":
    main()
