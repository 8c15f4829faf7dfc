"""The main job (`make demo`): scripted LIBERO demonstrations -> world tokens -> the four arms ->
offline evaluation with corruption -> closed-loop LIBERO evaluation with videos -> REPORT.md.

Each stage is one of the project's own commands (printed before it runs) and is skipped when its
outputs already exist, so re-running the same command continues where it stopped. Everything runs
offline on CPU; the budget is small (minutes of training per arm), and the report says so.

    .venv/bin/python scripts/quickstart.py [--output_dir=outputs/demo]
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

from lerobot_world.vocabulary import CORRUPTIONS  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(cmd: list[str], log: Path | None = None) -> float:
    """Run one stage command (exit on failure); return its wall time in seconds."""
    print(f"\n$ {shlex.join(cmd)}", flush=True)
    start = time.time()
    if log is None:
        rc = subprocess.call(cmd, cwd=ROOT)
    else:
        with open(log, "w") as f:
            rc = subprocess.call(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    if rc != 0:
        where = f"; see {log}" if log else ""
        sys.exit(f"error: stage failed (exit {rc}){where}; re-run the same command to continue.")
    seconds = time.time() - start
    print(f"  done in {seconds:.0f} s", flush=True)
    return seconds


class StageTimes:
    """Wall seconds per stage in ``timing.json`` beside the outputs, kept across re-runs: each completed
    run of a stage adds its time (a re-run that finds the work done adds only its check); a stage skipped
    because its outputs exist keeps the time it took when it ran."""

    def __init__(self, path: Path):
        self.path = path
        self.times = json.loads(path.read_text()) if path.is_file() else {}

    def add(self, stage: str, seconds: float) -> None:
        self.times[stage] = round(self.times.get(stage, 0.0) + seconds, 1)
        self.path.write_text(json.dumps(self.times, indent=2) + "\n")

    def sentence(self) -> str:
        info = Path("/proc/cpuinfo")
        names = [ln.split(":", 1)[1].strip() for ln in info.read_text().splitlines()
                 if ln.startswith("model name")] if info.is_file() else []
        cpu = names[0] if names else (platform.processor() or "unknown CPU")
        parts = [f"{k} {v / 60:.1f} min" for k, v in self.times.items()]
        return (f"Wall time per stage on this machine ({cpu}, {os.cpu_count()} cores): " + "; ".join(parts)
                + f"; {sum(self.times.values()) / 60:.1f} min in all before the report.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="outputs/demo")
    parser.add_argument("--suite", default="libero_object")
    parser.add_argument("--task_id", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=12, help="scripted demonstrations to record")
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=400, help="training steps per arm")
    parser.add_argument("--sim_episodes", type=int, default=3, help="closed-loop episodes per arm")
    parser.add_argument("--corruption_episodes", type=int, default=None,
                        help="closed-loop episodes per corruption mode for C (default: --sim_episodes; the first "
                             "episodes of the clean run, same init states and seeds, so they pair episode by episode)")
    args = parser.parse_args()
    if args.corruption_episodes is None:
        args.corruption_episodes = args.sim_episodes

    out = (ROOT / args.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data" / "libero_demo"
    matrix_dir = out / "matrix"
    start = time.time()
    times = StageTimes(out / "timing.json")
    print(f"lerobot-world main job -> {out}", flush=True)

    # 1. Scripted-expert demonstrations from seeded random placements (successful episodes only; --fill
    #    retries further seeds until there are --episodes of them). Never LIBERO's fixed init states:
    #    eval-sim evaluates from those, and refuses the ones a checkpoint's demos started from.
    print("\n[1/5] scripted demonstrations", flush=True)
    if (data / "meta" / "info.json").is_file():
        res_path = data / "results.json"
        recorded = json.loads(res_path.read_text()).get("config", {}).get("init") if res_path.is_file() else None
        if recorded != "random":  # e.g. an older main job's demos from LIBERO's fixed init states
            sys.exit(f"error: {data} holds demos recorded with --init={recorded}, expected seeded random placements "
                     f"(--init=random); remove {out} and re-run to start over.")
        print(f"  {data} exists, skipped")
    else:
        times.add("demos", run([str(BIN / "lerobot-world"), "demos", f"--suite={args.suite}", f"--task_ids={args.task_id}",
             f"--episodes_per_task={args.episodes}", f"--image_size={args.image_size}", "--init=random",
             "--fill=true", "--repo_id=local/libero_demo", f"--output_dir={data}", "--num_workers=2"]))

    # 2-4. Tokens, the four arms, offline + closed-loop evaluation: the matrix runner (resumable).
    print("\n[2/5] world tokens, four arms, offline and closed-loop evaluation (matrix runner)", flush=True)
    sim_args = [f"--env.task={args.suite}", f"--env.task_ids=[{args.task_id}]",
                f"--n_episodes_per_task={args.sim_episodes}", "--max_steps=300", "--max_videos_per_task=1"]
    import yaml

    matrix_cfg = yaml.safe_load((ROOT / "configs" / "matrix" / "demo.yaml").read_text())
    matrix_cfg["dataset"]["root"] = str(data)
    matrix_cfg["output_dir"] = str(matrix_dir)
    matrix_cfg["overrides"].update({"steps": args.steps, "save_freq": args.steps})
    matrix_cfg["eval_sim"]["extra_args"] = sim_args
    config_path = out / "matrix_demo.yaml"
    config_path.write_text(yaml.safe_dump(matrix_cfg, sort_keys=False))
    times.add("tokens, training, offline and closed-loop evaluation (matrix)",
              run([str(BIN / "lerobot-world"), "matrix", f"--config={config_path}"]))

    # 3. Closed-loop world corruption for C (the arm that consumes world tokens).
    print("\n[3/5] closed-loop world corruption for C", flush=True)
    for run_dir in sorted((matrix_dir / "runs").iterdir()):
        state = json.loads((run_dir / "state.json").read_text())
        if state.get("variant") != "C" or state.get("sweep"):
            continue
        for mode in CORRUPTIONS:
            stage = run_dir / f"eval_sim_{mode}"
            if (stage / "results.json").is_file():
                print(f"  {stage} exists, skipped")
                continue
            times.add("closed-loop corruption for C", run([str(BIN / "lerobot-world"), "eval-sim",
                 f"--policy.path={run_dir / 'train' / 'checkpoints' / 'last' / 'pretrained_model'}",
                 f"--env.task={args.suite}", f"--env.task_ids=[{args.task_id}]",
                 f"--n_episodes_per_task={args.corruption_episodes}", "--max_steps=300", f"--corruption={mode}",
                 "--max_videos_per_task=1", f"--output_dir={stage}", "--overwrite=true"],
                log=run_dir / f"eval_sim_{mode}.log"))

    # 4. The report.
    print("\n[4/5] report", flush=True)
    preamble = (
        f"Main job of lerobot-world on this machine: {args.episodes} scripted demonstrations of {args.suite} "
        f"task {args.task_id} from seeded random placements at {args.image_size} px (closed loop starts from "
        f"LIBERO's fixed init states, none of which a demonstration used), {args.steps} training steps per arm, "
        f"{args.sim_episodes} closed-loop episodes per arm ({args.corruption_episodes} per corruption mode). "
        "This is a small-scale smoke study: the training budget is far below what closed-loop success needs "
        "(DESIGN: plain ACT needed ~3000 steps for 10/10 on one libero_object task), so the intervals are wide "
        "and the comparison is not conclusive. Every number is real and comes from the commands listed below.\n\n"
        + times.sentence()
    )
    (out / "report_preamble.md").write_text(preamble)
    run([str(BIN / "lerobot-world"), "report", str(matrix_dir), f"--output={out / 'REPORT.md'}",
         "--title=lerobot-world main job", f"--preamble_file={out / 'report_preamble.md'}"])
    videos = sorted(matrix_dir.glob("runs/*/eval_sim*/videos/*.mp4"))
    print(f"\n[5/5] done in {(time.time() - start) / 60:.1f} min", flush=True)
    print(f"  report: {out / 'REPORT.md'}")
    print(f"  videos: {len(videos)} MP4 under {matrix_dir / 'runs'}")
    print(f"  wandb offline runs: {matrix_dir / 'runs'}/*/train/wandb (upload with `wandb sync DIR`)")


if __name__ == "__main__":
    main()
