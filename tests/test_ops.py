"""ops/: rclone sync of a run directory with a final flush on exit/kill, and resume from the remote.

Remotes here are rclone's local backend (`:local:/path`), which behaves like Drive/S3 for what we use
(copy, `--links` storing symlinks as `.rclonelink`)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY_POLICY_FLAGS, TOY_EVAL_SPLIT, TOY_REPO_ID

REPO = Path(__file__).resolve().parent.parent
SYNC = [sys.executable, str(REPO / "ops" / "sync_run.py")]


def _remote_last(remote: Path) -> str:
    """Where `checkpoints/last` points on the remote: a symlink (local backend) or `last.rclonelink`
    (Drive/S3 and other backends without symlinks, written by `--links`)."""
    last = remote / "checkpoints" / "last"
    if last.is_symlink():
        return os.readlink(last)
    return (remote / "checkpoints" / "last.rclonelink").read_text().strip()


def _rclone() -> str:
    sys.path.insert(0, str(REPO / "ops"))
    try:
        from sync_run import find_rclone

        return find_rclone()
    except SystemExit as e:  # pragma: no cover - set-up problem, not a test result
        pytest.fail(f"rclone is not installed ({e}); run ops/install_rclone.sh")
    finally:
        sys.path.pop(0)


# A stand-in trainer: writes LeRobot-shaped checkpoints (dir + `last` symlink), then dies by SIGKILL.
FAKE_TRAINER = r"""
import os, signal, sys, time, json
from pathlib import Path
out = Path(sys.argv[1]); ck = out / "checkpoints"
for step in (1, 2, 3):
    d = ck / f"{step:06d}" / "training_state"; d.mkdir(parents=True, exist_ok=True)
    (d / "training_step.json").write_text(json.dumps({"step": step}))
    last = ck / "last"
    if last.is_symlink(): last.unlink()
    last.symlink_to(f"{step:06d}")
    time.sleep(0.3)
if sys.argv[2] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
time.sleep(60)
"""


def test_sigkilled_trainer_is_flushed_and_restorable(tmp_path):
    _rclone()
    trainer = tmp_path / "fake_trainer.py"
    trainer.write_text(FAKE_TRAINER)
    src, remote = tmp_path / "run", tmp_path / "remote"
    # Interval far longer than the run: only the final flush (on the trainer's SIGKILL) can copy step 3.
    result = subprocess.run(
        [*SYNC, "run", f"--src={src}", f"--dst=:local:{remote}", "--interval=600", "--",
         sys.executable, str(trainer), str(src), "kill"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 128 + signal.SIGKILL, result.stderr
    assert "killed by signal 9" in result.stderr and "final flush" in result.stderr
    assert json.loads((remote / "checkpoints" / "000003" / "training_state" / "training_step.json").read_text())["step"] == 3
    assert _remote_last(remote) == "000003"

    # Machine lost: pull it back; `last` is a real symlink again, as LeRobot's resume expects.
    restored = tmp_path / "restored"
    subprocess.run([*SYNC, "pull", f"--src={restored}", f"--dst=:local:{remote}"], check=True, timeout=60)
    assert (restored / "checkpoints" / "last").is_symlink()
    assert json.loads((restored / "checkpoints" / "last" / "training_state" / "training_step.json").read_text())["step"] == 3


def test_sigterm_to_watcher_stops_trainer_then_flushes(tmp_path):
    _rclone()
    trainer = tmp_path / "fake_trainer.py"
    trainer.write_text(FAKE_TRAINER)
    src, remote = tmp_path / "run", tmp_path / "remote"
    proc = subprocess.Popen(
        [str(REPO / "ops" / "run_with_sync.sh"), str(src), f":local:{remote}", "600", "--",
         sys.executable, str(trainer), str(src), "sleep"],
        stderr=subprocess.PIPE, text=True,
    )
    step3 = src / "checkpoints" / "000003"
    deadline = time.time() + 60
    while not step3.exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert "got signal 15" in err and "final flush" in err, err
    assert proc.returncode == 128 + signal.SIGTERM
    assert (remote / "checkpoints" / "000003" / "training_state" / "training_step.json").is_file()


def test_bad_arguments_are_named(tmp_path):
    r = subprocess.run([*SYNC, "run", f"--src={tmp_path}", "--dst=:local:/x", "--interval=0", "--", "true"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "--interval=0" in r.stderr
    r = subprocess.run([*SYNC, "resume", f"--src={tmp_path / 'none'}", f"--dst=:local:{tmp_path / 'empty'}"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "no checkpoint to resume" in r.stderr


@pytest.mark.slow
def test_real_training_sigkill_remote_holds_last_checkpoint_and_resume_continues(
    toy_dataset_root, toy_world_table, tmp_path
):
    """Issue 6 Must-show 3 with the real lerobot-train: SIGKILL mid-run, remote has the last checkpoint,
    the local run is deleted, `ops/sync_run.py resume` restores it and training continues from that step."""
    _rclone()
    src, remote = tmp_path / "run", tmp_path / "remote"
    train = str(Path(sys.executable).parent / "lerobot-train")
    args = [
        "--policy.type=world_vla", "--policy.variant=C", f"--policy.world_tokens={toy_world_table}",
        f"--dataset.repo_id={TOY_REPO_ID}", f"--dataset.root={toy_dataset_root}",
        f"--dataset.eval_split={TOY_EVAL_SPLIT}", f"--output_dir={src}", "--steps=200", "--batch_size=4",
        "--log_freq=1", "--save_freq=2", "--num_workers=0", "--wandb.enable=false", "--seed=0", *TINY_POLICY_FLAGS,
    ]
    watcher = subprocess.Popen(
        [*SYNC, "run", f"--src={src}", f"--dst=:local:{remote}", "--interval=5", "--", train, *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    step_file = src / "checkpoints" / "last" / "training_state" / "training_step.json"
    deadline = time.time() + 600
    while time.time() < deadline and watcher.poll() is None:
        if step_file.is_file() and json.loads(step_file.read_text())["step"] >= 4:
            break
        time.sleep(0.3)
    # SIGKILL the trainer itself (the child of the watcher), as the OOM killer would.
    trainer_pid = int(subprocess.run(["pgrep", "-P", str(watcher.pid)], capture_output=True, text=True).stdout.split()[0])
    os.kill(trainer_pid, signal.SIGKILL)
    out, _ = watcher.communicate(timeout=300)
    assert watcher.returncode == 128 + signal.SIGKILL, out[-3000:]
    local_step = json.loads(step_file.read_text())["step"]
    assert 4 <= local_step < 200
    remote_step = json.loads(
        (remote / "checkpoints" / f"{local_step:06d}" / "training_state" / "training_step.json").read_text()
    )["step"]
    assert remote_step == local_step
    assert _remote_last(remote) == f"{local_step:06d}"

    # The machine is gone: only the remote is left. Resume continues from the remote's last step.
    import shutil

    shutil.rmtree(src)
    resumed = subprocess.run(
        [*SYNC, "resume", f"--src={src}", f"--dst=:local:{remote}", "--interval=30", "--", f"--steps={local_step + 2}"],
        capture_output=True, text=True, timeout=900,
    )
    log = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, log[-4000:]
    assert "Resuming data order" in log
    logged_steps = [int(s) for s in __import__("re").findall(r"step:(\d+) smpl", log)]
    assert logged_steps and logged_steps[0] == local_step + 1, logged_steps
    assert json.loads(step_file.read_text())["step"] == local_step + 2
    assert (remote / "checkpoints" / f"{local_step + 2:06d}" / "training_state" / "training_step.json").is_file()
