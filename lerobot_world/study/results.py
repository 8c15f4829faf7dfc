"""The committed results tree of a study (DESIGN §7): the small files that outlive the cache.

A study runs longer than one work session, and the machine's cache (token tables, checkpoints) may be
gone next time. What must last goes into git under the matrix's ``results_dir``:

    results_dir/
      matrix.json      the expanded plan: the config as written, the preset's content, every run's commands
      reproduce.sh     every command from scratch, in order
      dataset.json     the dataset: repo id, root, fingerprint, counts, tasks, and the `demos` record
                       (command, per-episode seeds / placements / success) when the dataset has one
      runs/<name>/     one finished run (every stage done), exported in one rename:
                         state.json, commands.sh (every command the run executed, in order), train_config.json,
                         policy_config.json, train_log_tail.txt, timing.json, <stage>/results.{json,md} and
                         small plots, at most one short video (the clean eval_sim's smallest mp4, re-encoded
                         smaller when it is over 2 MiB), and
                         complete.json, written last: every file with its sha256 and the plan it was made under.

A run folder with a valid complete.json is *done*: the matrix skips it even when the cache is empty. One
without it is not (an export is built in a temp folder beside it and renamed into place, so a half-written
folder never carries the marker). Checkpoints and datasets are never exported.

Commands are written with the matrix's output folder (the cache) as ``$OUTPUT_DIR`` (defined at the top of
commands.sh), so the files and a report made from them do not name the cache's absolute path.
"""

import hashlib
import json
import re
import shlex
import shutil
from pathlib import Path

from lerobot_world.dataset import dataset_root
from lerobot_world.errors import UserError
from lerobot_world.outputs import staged_dir, write_text_atomic

FORMAT = "lerobot_world.study_results/1"
MARKER = "complete.json"
DATASET_FILE = "dataset.json"
COMMANDS_FILE = "commands.sh"
STAGE_RESULT_FILES = ("results.json", "results.md")
TRAIN_LOG_TAIL_LINES = 50
MAX_VIDEO_BYTES = 2 << 20
VIDEO_REENCODE_CRF = 28
MAX_PLOT_BYTES = 1 << 20
# The stage whose smallest video is kept (the clean closed-loop evaluation of the final checkpoint).
VIDEO_STAGE = "eval_sim"
STAGE_LINE = "# stage: "


class StudyResultsError(UserError):
    """A results tree that cannot be used as it is; the message names the file and what was expected."""


# ----------------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def portable(text: str, output_root: Path, home: bool = False) -> str:
    """``text`` with the cache folder written as ``$OUTPUT_DIR`` (and, with ``home``, the home folder as ``~``:
    for comparing plans across machines, never for commands to execute)."""
    # The folder itself or a path below it, never a longer name that starts with it (/cache vs /cache2).
    text = re.sub(re.escape(str(output_root)) + r"(?=/|$|[^\w.-])", "$OUTPUT_DIR", text)
    h = str(Path.home())
    return text.replace(h + "/", "~/") if home and h not in ("/", "") else text


def _quote(arg: str) -> str:
    """A shell word for ``arg`` in which ``$OUTPUT_DIR`` (written by ``portable``) expands and nothing else does."""
    if "$OUTPUT_DIR" not in arg:
        return shlex.quote(arg)
    return '"$OUTPUT_DIR"'.join(shlex.quote(piece) if piece else "" for piece in arg.split("$OUTPUT_DIR"))


def shell_line(cmd: list[str], env: dict[str, str] | None, output_root: Path) -> str:
    """One portable shell line running ``cmd`` with ``env`` (cache folder as $OUTPUT_DIR)."""
    words = [f"{k}={_quote(portable(v, output_root))}" for k, v in (env or {}).items()]
    words += [_quote(portable(a, output_root)) for a in cmd]
    return " ".join(words)


def output_dir_word(configured: str) -> str:
    """The configured output_dir as a shell word (``~/`` kept expandable)."""
    if configured.startswith("~/"):
        return "~/" + shlex.quote(configured[2:])
    return shlex.quote(configured)


def commands_header(run_name: str, matrix_name: str, configured_output_dir: str) -> str:
    return "\n".join([
        "#!/usr/bin/env bash",
        f"# Run {run_name} of matrix {matrix_name!r}: every command the matrix runner executed for it, in order",
        "# (retried and resumed trainings included). Run from the repository root: relative paths are relative",
        "# to it. OUTPUT_DIR is the matrix's output folder (the cache of tables and checkpoints).",
        "set -euo pipefail",
        "export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}",
        f"OUTPUT_DIR=${{OUTPUT_DIR:-{output_dir_word(configured_output_dir)}}}",
        "",
    ]) + "\n"


def append_command(run_dir: Path, stage: str, line: str, header: str) -> None:
    """Add one executed command (a ``shell_line``) to the run's commands.sh, under ``# stage: <stage>``."""
    path = run_dir / COMMANDS_FILE
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        if f.tell() == 0:
            f.write(header)
        f.write(f"{STAGE_LINE}{stage}\n{line}\n")


def read_commands(path: Path) -> list[tuple[str, str]]:
    """(stage, command line) pairs of a commands.sh written by ``append_command``, in order."""
    out, stage = [], None
    for line in path.read_text().splitlines():
        if line.startswith(STAGE_LINE):
            stage = line[len(STAGE_LINE):].strip()
        elif stage is not None and line.strip() and not line.startswith("#"):
            out.append((stage, line))
            stage = None
    return out


# ----------------------------------------------------------------------------------------------------
# runs
# ----------------------------------------------------------------------------------------------------


def run_results_dir(results_dir: Path, name: str) -> Path:
    return Path(results_dir) / "runs" / name


def load_marker(results_dir: Path, name: str) -> dict | None:
    """The complete.json of an exported run, its files checked against their sha256; None if not exported.

    An altered or missing file is an error (StudyResultsError): treating the run as not done would retrain
    it and overwrite committed results, treating it as done would report files that are not what was run."""
    folder = run_results_dir(results_dir, name)
    path = folder / MARKER
    if not path.is_file():
        return None
    try:
        marker = json.loads(path.read_text())
        files = marker["files"]
        if not isinstance(files, dict):
            raise TypeError(f"'files' is a {type(files).__name__}")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise StudyResultsError(
            f"{path} is not a completion marker of `lerobot-world matrix` (a JSON object with 'files' expected: "
            f"{e!r}); restore it from git, or delete {folder} to redo the run."
        ) from None
    for rel, digest in sorted(files.items()):
        f = folder / rel
        if not f.is_file() or sha256_file(f) != digest:
            what = "is missing" if not f.is_file() else "does not match its sha256 in complete.json"
            raise StudyResultsError(
                f"{f} {what}; restore it from git (git checkout -- {folder}), or delete {folder} to redo the run."
            )
    return marker


def plan_difference(marker: dict, spec: dict) -> str | None:
    """Why an exported run does not answer the current plan for it (None when it does).

    ``spec`` is the run's machine-independent plan ({"train": [...], "stages": {name: [...]}}): the training
    command must be the same and every planned stage must be among the exported ones, with the same command."""
    made = marker.get("plan") or {}
    if made.get("train") != spec["train"]:
        old, new = set(made.get("train") or []), set(spec["train"])
        diff = sorted(new - old)[:2] + [f"(was {a})" for a in sorted(old - new)[:2]]
        return f"its training command differs ({' '.join(diff) or 'flag order'})"
    for stage, cmd in spec["stages"].items():
        if stage not in (made.get("stages") or {}):
            return f"stage {stage} is planned but was not part of the exported run"
        if made["stages"][stage] != cmd:
            return f"the command of stage {stage} differs"
    return None


# A tqdm progress bar ("Training:  50%|█████     | 2/4 [00:03<00:03,  1.63s/step]"), redrawn with \r and
# often followed on the same line by a log record.
_PROGRESS_BAR = re.compile(r"[^\r\n|]*\|[^|\r\n]*\|\s*\d+/\d+\s*\[[^\]\r\n]*\]")


def log_tail(path: Path, n: int = TRAIN_LOG_TAIL_LINES) -> str:
    """The last ``n`` lines of a log with its progress bars removed (the step/loss lines and what follows)."""
    if not path.is_file():
        return ""
    lines = [_PROGRESS_BAR.sub("", ln).rstrip() for ln in re.split(r"[\r\n]", path.read_text(errors="replace"))]
    lines = [ln for ln in lines if ln]
    return "\n".join(lines[-n:]) + "\n"


def _timing(state: dict) -> dict:
    stages = state.get("stages", {})
    out = {name: info.get("seconds_total", info.get("seconds")) for name, info in stages.items()}
    known = [v for v in out.values() if isinstance(v, (int, float))]
    timing = {"seconds": out, "total_seconds": round(sum(known), 1) if known else None,
              "note": "wall seconds per stage on the machine that ran it; train sums every attempt (resumes included) "
                      "up to its last checkpoint"}
    train = stages.get("train", {})
    if train.get("interrupted_attempts"):
        timing["train_interrupted_attempts"] = train["interrupted_attempts"]
        timing["train_lost_seconds"] = train.get("lost_seconds_total", 0.0)
        timing["note"] += ("; train_lost_seconds: the time interrupted attempts spent after their last checkpoint, "
                           "redone on resume (not in the totals)")
    return timing


def keep_one_video(src: Path, dst: Path, max_bytes: int) -> Path | None:
    """Put the smallest ``src/*.mp4`` into ``dst`` under ``max_bytes``; returns its path, or None when none fits.

    eval-sim writes its videos fast (x264 "ultrafast"): a 520-step LIBERO rollout is 2-3 MB. One over the cap
    is re-encoded by LeRobot's ``reencode_video`` (h264, CRF 28, preset "slow": ~0.6 MB, same frames and
    frame rate); the copy in the cache is left as it was."""
    videos = sorted((p.stat().st_size, p.name, p) for p in src.glob("*.mp4")) if src.is_dir() else []
    if not videos:
        return None
    size, name, path = videos[0]
    dst.mkdir()
    if size <= max_bytes:
        return Path(shutil.copyfile(path, dst / name))
    from lerobot.configs import RGBEncoderConfig
    from lerobot.datasets.video_utils import reencode_video

    small = dst / name
    encoder = RGBEncoderConfig(vcodec="h264", pix_fmt="yuv420p", crf=VIDEO_REENCODE_CRF, preset="slow", g=None)
    reencode_video(path, small, video_encoder=encoder, encoder_threads=1, overwrite=True)
    if small.stat().st_size <= max_bytes:
        return small
    small.unlink()
    dst.rmdir()
    return None


def export_run(
    run_dir: Path,
    results_dir: Path,
    name: str,
    stages: list[str],
    done_marker: str,
    spec: dict,
    output_root: Path,
    max_video_bytes: int = MAX_VIDEO_BYTES,
) -> Path:
    """Copy a finished run's small files to ``results_dir/runs/<name>/`` atomically; returns that folder.

    Refuses (StudyResultsError) unless the training has its final checkpoint and every stage in ``stages``
    has ``done_marker``: a run is exported only when all of it finished."""
    run_dir, results_dir = Path(run_dir), Path(results_dir)
    ckpt = run_dir / "train" / "checkpoints" / "last" / "pretrained_model"
    missing = [s for s in stages if not (run_dir / s / done_marker).is_file()]
    if not (ckpt / "config.json").is_file():
        missing.insert(0, "train")
    if missing:
        raise StudyResultsError(f"run {name} is not finished (stage {missing[0]} is not done); it is not exported.")
    dest = run_results_dir(results_dir, name)
    for stale in dest.parent.glob(f".{dest.name}.partial-*"):  # left by a runner that was killed mid-export
        shutil.rmtree(stale, ignore_errors=True)
    with staged_dir(dest) as staged:  # an earlier, unfinished copy (no valid marker) is replaced whole
        tmp = staged.path
        state = json.loads((run_dir / "state.json").read_text())
        (tmp / "state.json").write_text(portable(json.dumps(state, indent=2), output_root) + "\n")
        shutil.copyfile(run_dir / COMMANDS_FILE, tmp / COMMANDS_FILE)
        shutil.copyfile(ckpt / "config.json", tmp / "policy_config.json")
        if (ckpt / "train_config.json").is_file():
            shutil.copyfile(ckpt / "train_config.json", tmp / "train_config.json")
        (tmp / "train_log_tail.txt").write_text(portable(log_tail(run_dir / "train.log"), output_root))
        (tmp / "timing.json").write_text(json.dumps(_timing(state), indent=2) + "\n")
        for stage in stages:
            src, dst = run_dir / stage, tmp / stage
            dst.mkdir()
            for f in STAGE_RESULT_FILES:
                if (src / f).is_file():
                    shutil.copyfile(src / f, dst / f)
            for png in sorted(src.glob("*.png")):
                if png.stat().st_size <= MAX_PLOT_BYTES:
                    shutil.copyfile(png, dst / png.name)
            if stage == VIDEO_STAGE:
                keep_one_video(src / "videos", dst / "videos", max_video_bytes)
        files = {p.relative_to(tmp).as_posix(): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        marker = {"format": FORMAT, "run": name, "stages": ["train", *stages], "plan": spec, "files": files}
        (tmp / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
    return dest


# ----------------------------------------------------------------------------------------------------
# the dataset
# ----------------------------------------------------------------------------------------------------


def dataset_record(repo_id: str, root: str | None) -> dict:
    """What identifies the study's dataset: fingerprint, counts, tasks, and its `demos` record if any."""
    path = dataset_root(repo_id, root)
    if not (path / "meta" / "info.json").is_file():
        raise StudyResultsError(
            f"dataset.root={root or path} has no meta/info.json; expected the study's LeRobotDataset on disk "
            "(results_dir records its fingerprint)."
        )
    from lerobot_world.dataset import open_metadata
    from lerobot_world.tokens.table import dataset_fingerprint

    meta = open_metadata(repo_id, path, flag="dataset.root")
    tasks = meta.tasks
    task_list = [str(t) for t in tasks.sort_values("task_index").index] if hasattr(tasks, "sort_values") else list(tasks)
    record = {
        "repo_id": repo_id,
        "root": root,
        "fingerprint": dataset_fingerprint(meta),
        "fingerprint_of": "lerobot_world.tokens.table.dataset_fingerprint (info.json counts/features + data/ and videos/ bytes)",
        "total_episodes": int(meta.total_episodes),
        "total_frames": int(meta.total_frames),
        "fps": int(meta.fps),
        "tasks": task_list,
        "demos": None,
    }
    demos = path / "results.json"
    if demos.is_file():
        res = json.loads(demos.read_text())
        record["demos"] = {
            "source": "results.json of `lerobot-world demos` at the dataset root",
            "command": res.get("command"),
            "config": res.get("config"),
            "suite": res.get("suite"),
            "task_ids": res.get("task_ids"),
            "total": res.get("total"),
            "per_task": res.get("per_task"),
            # Per attempted episode: task, seed (random placement) or init_id (fixed init state), success, steps.
            "episodes": [{k: e.get(k) for k in ("task_id", "key", "seed", "init_id", "success", "steps", "attempts")}
                         for e in res.get("episodes", [])],
        }
    else:
        record["demos_missing"] = "no results.json at the dataset root (not recorded by `lerobot-world demos`)"
    return record


def check_dataset(results_dir: Path, repo_id: str, root: str | None) -> tuple[dict, bool]:
    """Write ``results_dir/dataset.json`` the first time; later, refuse a dataset with another fingerprint.

    Returns (record, written)."""
    path = Path(results_dir) / DATASET_FILE
    record = dataset_record(repo_id, root)
    if path.is_file():
        try:
            old = json.loads(path.read_text())["fingerprint"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise StudyResultsError(f"{path} has no readable 'fingerprint' ({e!r}); restore it from git.") from None
        if old != record["fingerprint"]:
            raise StudyResultsError(
                f"dataset {repo_id} at {dataset_root(repo_id, root)} has fingerprint {record['fingerprint']}, but "
                f"{path} records {old}: the results there were made from other data (restore that dataset, or "
                "re-record it with the demos command in dataset.json, or use another results_dir)."
            )
        return record, False
    write_text_atomic(path, json.dumps(record, indent=2) + "\n")
    return record, True


