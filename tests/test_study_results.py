"""A study that outlives the cache: the matrix exports every finished run to results_dir (small files, a
completion marker written last), skips exported runs even with an empty cache, never exports a run with an
unfinished stage, pins the dataset's fingerprint, and the report regenerates byte for byte from the tree.

One real matrix (arm A on the toy dataset, 4 lerobot-train steps saving a checkpoint every 2, eval-offline)
is run once for the module, from a work folder with a relative dataset root and the cache under ``~`` (HOME
points into the test's folder), as the study configs do. Calibration stages (`checkpoints`) are planned
from LeRobot's own checkpoint naming (checked here against the real training) and reported from synthetic
results, so the module runs one training and one evaluation.
"""

import contextlib
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import TINY_POLICY_FLAGS, TOY_EVAL_SPLIT, TOY_REPO_ID

NAME = "study_test"


def _overrides() -> dict:
    items = {f.split("=")[0][2:]: f.split("=", 1)[1] for f in TINY_POLICY_FLAGS}
    items.update({"steps": "4", "save_freq": "2", "log_freq": "2", "batch_size": "4", "num_workers": "0",
                  "dataset.eval_split": str(TOY_EVAL_SPLIT)})
    return items


def _config(dataset_root: str, steps: str = "4", **extra) -> dict:
    overrides = _overrides()
    overrides["steps"] = steps
    return {
        "name": NAME,
        "output_dir": f"~/.cache/lerobot-world/{NAME}",
        "results_dir": f"results/{NAME}",
        "preset": "cpu_small",
        "dataset": {"repo_id": TOY_REPO_ID, "root": dataset_root},
        "variants": ["A"],
        "seeds": [0],
        "overrides": overrides,
        "progress_every_s": 600,
        "eval_offline": {"enable": True, "extra_args": ["--n_bootstrap=100"]},
        **extra,
    }


def _matrix(args: list[str]) -> tuple[int, str, str]:
    """lerobot-world matrix in this process: (exit code, stdout, stderr)."""
    from lerobot_world.study.matrix import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(args)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def study(toy_dataset_root, tmp_path_factory):
    work = tmp_path_factory.mktemp("study")
    repo, home = work / "repo", work / "home"
    repo.mkdir()
    home.mkdir()
    rel_root = os.path.relpath(toy_dataset_root, repo)
    config = repo / "m.json"
    config.write_text(json.dumps(_config(rel_root)))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(repo)
        mp.setenv("HOME", str(home))
        code, out, err = _matrix([f"--config={config.name}"])
    assert code == 0, out[-4000:] + err[-4000:]
    return {"work": work, "repo": repo, "home": home, "config": config, "rel_root": rel_root, "log": out,
            "cache": home / ".cache" / "lerobot-world" / NAME, "results": repo / "results" / NAME}


# ------------------------------------------------------------------------------------------------
# (a) a finished run is exported with its marker and its files, and nothing big
# ------------------------------------------------------------------------------------------------


def test_finished_run_is_exported_with_marker_and_files(study, toy_dataset_root):
    from lerobot_world.study.matrix import load_config, make_plan
    from lerobot_world.study.results import sha256_file
    from lerobot_world.tokens.table import dataset_fingerprint

    results, cache = study["results"], study["cache"]
    assert (cache / "runs" / "A_s0" / "train" / "checkpoints" / "last").is_dir()  # ~ expanded: cache under HOME
    # A `checkpoints: [2]` stage would read the folder this real training saved at step 2.
    cfg = load_config(study["config"])
    cfg.eval_sim.enable, cfg.eval_sim.checkpoints = True, [2]
    cfg.output_dir = str(cache)
    planned = {st.name: st.checkpoint for st in make_plan(cfg).stages(make_plan(cfg).runs[0])}
    assert (planned["eval_sim_step2"] / "model.safetensors").is_file(), planned
    run = results / "runs" / "A_s0"
    marker = json.loads((run / "complete.json").read_text())
    files = marker["files"]
    for name in ("state.json", "commands.sh", "train_config.json", "policy_config.json", "train_log_tail.txt",
                 "timing.json", "eval_offline/results.json", "eval_offline/results.md"):
        assert name in files, name
    on_disk = {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()} - {"complete.json"}
    assert on_disk == set(files)
    assert all(sha256_file(run / f) == h for f, h in files.items())
    assert marker["stages"] == ["train", "eval_offline"]
    # Small files only: no checkpoint, no dataset, nothing hidden left from the atomic export.
    assert not list(run.rglob("*.safetensors")) and not (run / "train").exists()
    assert sum(p.stat().st_size for p in results.rglob("*") if p.is_file()) < 1_000_000
    assert [p.name for p in (results / "runs").iterdir()] == ["A_s0"]
    assert json.loads((run / "train_config.json").read_text())["steps"] == 4
    timing = json.loads((run / "timing.json").read_text())["seconds"]
    assert timing["train"] > 0 and timing["eval_offline"] > 0
    # commands.sh: every command in execution order, the cache as $OUTPUT_DIR; valid bash.
    text = (run / "commands.sh").read_text()
    stages = [ln.split(": ", 1)[1] for ln in text.splitlines() if ln.startswith("# stage: ")]
    assert stages == ["train", "eval_offline"]
    assert str(cache) not in text and '--output_dir="$OUTPUT_DIR"/runs/A_s0/train' in text
    assert "OUTPUT_DIR=${OUTPUT_DIR:-~/.cache/lerobot-world/study_test}" in text
    assert subprocess.run(["bash", "-n", str(run / "commands.sh")]).returncode == 0
    tail = (run / "train_log_tail.txt").read_text()
    assert len(tail.splitlines()) <= 50 and "step:4 " in tail and "End of training" in tail
    assert "%|" not in tail and "\r" not in tail  # progress bars dropped, log records kept
    # The study's files beside the runs.
    for name in ("matrix.json", "reproduce.sh", "dataset.json"):
        assert (results / name).is_file(), name
    plan = json.loads((results / "matrix.json").read_text())
    assert [r["name"] for r in plan["runs"]] == ["A_s0"] and list(plan["runs"][0]["stages"]) == ["eval_offline"]
    ds = json.loads((results / "dataset.json").read_text())

    class _Meta:
        root = toy_dataset_root

    assert ds["fingerprint"] == dataset_fingerprint(_Meta()) and ds["root"] == study["rel_root"]
    assert ds["repo_id"] == TOY_REPO_ID and ds["total_episodes"] == 12 and len(ds["tasks"]) == 3
    assert "A_s0: exported to" in study["log"]


# ------------------------------------------------------------------------------------------------
# (b) the cache is gone: the same command does not retrain an exported run
# ------------------------------------------------------------------------------------------------


def test_empty_cache_rerun_does_not_retrain_exported_run(study, monkeypatch):
    from lerobot_world.study import matrix

    before = {p: p.read_bytes() for p in study["results"].rglob("*") if p.is_file()}
    cache = study["cache"]
    aside = cache.with_name(cache.name + ".moved_away")  # the cache is gone (put back afterwards for other tests)
    cache.rename(aside)
    calls = []
    monkeypatch.setattr(matrix.Runner, "_run", lambda self, cmd, *a, **k: calls.append(cmd) or 1)
    monkeypatch.chdir(study["repo"])
    monkeypatch.setenv("HOME", str(study["home"]))
    try:
        code, out, err = _matrix([f"--config={study['config'].name}"])
        assert not (cache / "runs" / "A_s0").exists()
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        aside.rename(cache)
    assert code == 0, out + err
    assert calls == []  # no lerobot-train, no tokenize, no evaluation
    assert "[exported] A_s0" in out and "A_s0: exported in" in out and "skipped" in out
    after = {p: p.read_bytes() for p in study["results"].rglob("*") if p.is_file()}
    assert after == before  # the committed tree is untouched (plan files rewritten identically)


# ------------------------------------------------------------------------------------------------
# (c) a run with a stage that did not finish is not exported
# ------------------------------------------------------------------------------------------------


def test_interrupted_run_is_not_exported(study, tmp_path, monkeypatch):
    from lerobot_world.study import results as study_results
    from lerobot_world.study.matrix import DONE

    # A copy of the finished run's cache folder, without its (big) training: the trained checkpoint is linked.
    src = study["cache"] / "runs" / "A_s0"
    cache = tmp_path / "cache"
    run = cache / "runs" / "A_s0"
    run.mkdir(parents=True)
    (run / "train").symlink_to(src / "train")
    for name in ("state.json", "commands.sh", "train.log"):
        shutil.copy(src / name, run / name)
    shutil.copytree(src / "eval_offline", run / "eval_offline")
    (run / "eval_offline" / DONE).unlink()  # interrupted: results files there, stage not done
    results = tmp_path / "results"

    with pytest.raises(study_results.StudyResultsError, match="stage eval_offline is not done"):
        study_results.export_run(run, results, "A_s0", ["eval_offline"], DONE, {"train": [], "stages": {}}, cache)
    assert not (results / "runs" / "A_s0").exists()

    # Through the runner: the unfinished stage is re-run and fails (a bad flag), so the run is not exported.
    cfg = _config(study["rel_root"])
    cfg["eval_offline"]["extra_args"] = ["--batch_size=0"]
    cfg.update(output_dir=str(cache), results_dir=str(results))
    config = tmp_path / "m.json"
    config.write_text(json.dumps(cfg))
    monkeypatch.chdir(study["repo"])
    code, out, err = _matrix([f"--config={config}"])
    assert code == 1, out + err
    assert "A_s0: train done (step 4), skipped" in out and "FAILED run A_s0: eval_offline exited" in out
    assert (results / "dataset.json").is_file()
    assert not (results / "runs").exists() or list((results / "runs").iterdir()) == []  # no temp copy left either
    assert not (run / "eval_offline" / "results.json").exists()  # the partial stage was not kept either


# ------------------------------------------------------------------------------------------------
# (d) other data, another plan or an altered file: refused in one sentence, nothing written
# ------------------------------------------------------------------------------------------------


def _copy_results(study, tmp_path) -> Path:
    dst = tmp_path / "results"
    shutil.copytree(study["results"], dst)
    return dst


def _snapshot(folder: Path) -> dict:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _refused(study, tmp_path, monkeypatch, results: Path, config: dict | None = None) -> str:
    cfg = config or _config(study["rel_root"])
    cfg.update(results_dir=str(results), output_dir=str(tmp_path / "cache"))
    path = tmp_path / "m.json"
    path.write_text(json.dumps(cfg))
    monkeypatch.chdir(study["repo"])
    before = _snapshot(results)
    code, out, err = _matrix([f"--config={path}"])
    assert code == 2, out + err
    assert _snapshot(results) == before and not (tmp_path / "cache" / "runs").exists()
    message = err.strip()
    assert message.startswith("error: ") and "\n" not in message and message.endswith("."), message
    return message


def test_dataset_fingerprint_mismatch_is_refused(study, tmp_path, monkeypatch):
    results = _copy_results(study, tmp_path)
    ds = json.loads((results / "dataset.json").read_text())
    real = ds["fingerprint"]
    ds["fingerprint"] = "0" * 64
    (results / "dataset.json").write_text(json.dumps(ds))
    message = _refused(study, tmp_path, monkeypatch, results)
    assert real in message and "0" * 64 in message and "other data" in message


def test_exported_run_from_another_plan_or_altered_is_refused(study, tmp_path, monkeypatch):
    results = _copy_results(study, tmp_path)
    message = _refused(study, tmp_path, monkeypatch, results, _config(study["rel_root"], steps="6"))
    assert "run A_s0 was exported" in message and "--steps=6" in message and "(was --steps=4)" in message
    (results / "runs" / "A_s0" / "eval_offline" / "results.md").write_text("edited\n")
    message = _refused(study, tmp_path, monkeypatch, results)
    assert "eval_offline/results.md does not match its sha256" in message


# ------------------------------------------------------------------------------------------------
# (e) REPORT.md from the results tree: the same bytes twice and from a fresh copy, no absolute paths
# ------------------------------------------------------------------------------------------------


def test_report_from_results_tree_is_byte_identical_and_portable(study, tmp_path, monkeypatch):
    from lerobot_world.study.report import main as report

    monkeypatch.chdir(tmp_path)
    results = study["results"]
    copy = tmp_path / "elsewhere" / "copy_of_results"
    shutil.copytree(results, copy)
    outs = []
    for i, src in enumerate((results, results, copy)):
        out = tmp_path / f"r{i}" / "REPORT.md"
        with contextlib.redirect_stdout(io.StringIO()):
            report([str(src), f"--output={out}", "--n_bootstrap=200"])
        outs.append(out)
    texts = [o.read_bytes() for o in outs]
    assert texts[0] == texts[1] == texts[2]
    assert outs[0].with_suffix(".json").read_bytes() == outs[2].with_suffix(".json").read_bytes()
    text = texts[0].decode()
    for path in (study["work"], study["home"], study["cache"], tmp_path, "/tmp/"):
        assert str(path) not in text, path
    assert "- **A_s0** (`runs/A_s0`)" in text
    assert '  - train: `lerobot-train --policy.type=world_vla' in text and '"$OUTPUT_DIR"/runs/A_s0/train' in text
    assert "  - eval_offline: `lerobot-world eval-offline" in text and "## 3. Offline evaluation" in text
    assert "Calibration" not in text  # no earlier-checkpoint stages in this study


def test_calibration_from_a_separate_matrix_joins_only_the_calibration_section(tmp_path, capsys):
    """`report results/cpu_study --calibration=results/cpu_calibration`: the calibration trainings' checkpoint
    curve appears as "A (cpu_calibration)" rows, while every table and comparison before it is the same as
    without them (the calibration's A_s0 is never pooled with the study's A_s0); bad folders are refused."""
    import numpy as np
    from test_report import _sim_episodes, _sim_results, _write_run

    from lerobot_world.study.report import ReportError, build_report, main

    rng = np.random.default_rng(1)
    study = tmp_path / "results" / "cpu_study"
    for arm, p in (("A", 0.2), ("B", 0.3)):
        _write_run(study, arm, 0, None, _sim_results(_sim_episodes(p, rng, None), None))
    calib = tmp_path / "results" / "cpu_calibration"
    run = _write_run(calib, "A", 0, None, _sim_results(_sim_episodes(1.0, rng, None), None))  # far off: would show
    (run / "train_config.json").write_text(json.dumps({"steps": 12, "seed": 0}))
    (run / "eval_sim_step4").mkdir()
    (run / "eval_sim_step4" / "results.json").write_text(json.dumps(_sim_results(_sim_episodes(0.0, rng, None), None)))

    plain = build_report([study], tmp_path / "plain" / "R.md", n_bootstrap=300).read_text()
    out = build_report([study], tmp_path / "with" / "R.md", n_bootstrap=300, calibration_from=calib)
    text = out.read_text()
    before, section = text.split("## Calibration: success vs training steps", 1)
    section, after = section.split("\n## ", 1)
    assert "Calibration" not in plain
    assert (before + "## " + after).split("## Plots", 1)[0] == plain.split("## Plots", 1)[0]
    rows = [ln.strip("| ").split(" | ") for ln in section.splitlines() if ln.startswith("| ")][1:]
    assert [(r[0], r[1]) for r in rows] == [("A (cpu_calibration)", "4"), ("A (cpu_calibration)", "12")]
    assert rows[0][4].startswith("0% [") and rows[1][4].startswith("100% [")
    assert "separate calibration trainings in `cpu_calibration`" in section
    assert "- **A_s0** (`cpu_calibration/runs/A_s0`)" in text and "- **A_s0** (`runs/A_s0`)" in text
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["calibration_runs"] == ["cpu_calibration/runs/A_s0"]
    assert [r["path"] for r in report["runs"]] == ["runs/A_s0", "runs/B_s0"]

    with pytest.raises(ReportError, match="holds no evaluations of earlier checkpoints"):
        build_report([study], tmp_path / "R2.md", calibration_from=study)
    with pytest.raises(SystemExit):
        main([str(study), f"--calibration={tmp_path / 'nope'}", f"--output={tmp_path / 'R3.md'}"])
    assert "--calibration=" in capsys.readouterr().err and not (tmp_path / "R3.md").exists()


def test_calibration_from_closed_loop_checkpoints(tmp_path):
    """Closed-loop calibration (no LIBERO): eval_sim_step<N> results of one run, pooled per step with the
    per-arm bootstrap; the final checkpoint is the point at the run's training steps; sweeps stay out."""
    import numpy as np
    from test_report import _offline, _sim_episodes, _sim_results, _write_run

    from lerobot_world.study.report import build_report

    root = tmp_path / "results"
    rng = np.random.default_rng(0)
    final = _sim_episodes(0.9, rng, None)
    offline = {"final": _offline("A", 0, 0.2, rng), 4: _offline("A", 0, 0.6, rng)}
    run = _write_run(root, "A", 0, offline["final"], _sim_results(final, None))
    (run / "train_config.json").write_text(json.dumps({"steps": 12, "batch_size": 4, "seed": 0}))
    by_step = {4: _sim_episodes(0.1, rng, None), 8: _sim_episodes(0.5, rng, None)}
    for n, eps in by_step.items():
        (run / f"eval_sim_step{n}").mkdir()
        (run / f"eval_sim_step{n}" / "results.json").write_text(json.dumps(_sim_results(eps, None)))
    (run / "eval_offline_step4").mkdir()  # offline calibration: MSE 0.6 at step 4, 0.2 at the end
    (run / "eval_offline_step4" / "results.json").write_text(json.dumps(offline[4]))
    sweep = _write_run(root, "B", 0, None, _sim_results(final, None))
    state = json.loads((sweep / "state.json").read_text())
    (sweep / "state.json").write_text(json.dumps({**state, "name": "B_s0_lw2", "sweep": {"lambda_world": 2}}))
    (sweep / "eval_sim_step4").mkdir()
    (sweep / "eval_sim_step4" / "results.json").write_text(json.dumps(_sim_results(by_step[4], None)))

    out = build_report([root], tmp_path / "R.md", n_bootstrap=300)
    text = out.read_text()
    section = text.split("## Calibration: success vs training steps", 1)[1].split("\n## ", 1)[0]
    rows = [ln.strip("| ").split(" | ") for ln in section.splitlines() if ln.startswith("| ")][1:]
    # the sweep is its own curve, never pooled into its arm's
    assert [(r[0], r[1]) for r in rows] == [("A", "4"), ("A", "8"), ("A", "12"), ("B (lambda_world=2)", "4")]
    for (_, _, seeds, n_eps, success, _, _), eps in zip(rows, [by_step[4], by_step[8], final, by_step[4]], strict=True):
        assert seeds == "0" and n_eps == str(len(eps))
        rate = round(100 * sum(e["success"] for e in eps) / len(eps))
        assert success.startswith(f"{rate}% [")  # an interval: 30 episodes in 2 tasks
    def pooled(res):  # held-out squared error over values, as eval-offline's per-episode sums pool
        eps = res["checkpoints"][0]["per_episode"]
        return f"{sum(e['se_sum'] for e in eps) / sum(e['n_values'] for e in eps):.4f} ["

    mse = [r[6] for r in rows]
    assert mse[0].startswith(pooled(offline[4])) and mse[1] == "—" and mse[2].startswith(pooled(offline["final"])) and mse[3] == "—", mse
    report = json.loads(out.with_suffix(".json").read_text())
    assert set(report["calibration"]["A"]) == {"4", "8", "12"}
    assert "calibration.png" in report["plots"]
    # No checkpoint stages: no calibration section at all.
    for d in (run / "eval_sim_step4", run / "eval_sim_step8", run / "eval_offline_step4", sweep / "eval_sim_step4"):
        shutil.rmtree(d)
    assert "Calibration" not in build_report([root], tmp_path / "R2.md", n_bootstrap=300).read_text()


# ------------------------------------------------------------------------------------------------
# (e) the one rollout video a run keeps fits the size cap: copied when small, re-encoded when not
# ------------------------------------------------------------------------------------------------


def _write_video(path: Path, n_frames: int, seed: int) -> None:
    """A moving gradient with noise, written as eval-sim writes its videos (x264 ultrafast), here lossless."""
    import imageio.v2 as imageio
    import numpy as np

    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, 96, dtype=np.float32)
    with imageio.get_writer(str(path), fps=20, codec="libx264", quality=None, macro_block_size=16,
                            pixelformat="yuv420p", output_params=["-preset", "ultrafast", "-crf", "0"]) as w:
        for t in range(n_frames):
            img = (ramp[None, :, None] + t + rng.normal(0, 12, (96, 96, 3))).clip(0, 255).astype(np.uint8)
            w.append_data(img)


def test_kept_video_fits_the_cap(tmp_path):
    from lerobot_world.study.results import keep_one_video
    from eval_sim.video import read_frames

    src = tmp_path / "videos"
    src.mkdir()
    _write_video(src / "long.mp4", 40, 0)
    _write_video(src / "short.mp4", 20, 1)
    short = (src / "short.mp4").read_bytes()
    assert len(short) < (src / "long.mp4").stat().st_size

    # Under the cap: the smallest video, byte for byte.
    kept = keep_one_video(src, tmp_path / "a", max_bytes=len(short))
    assert kept == tmp_path / "a" / "short.mp4" and kept.read_bytes() == short
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["short.mp4"]

    # Over the cap: re-encoded below it, the same frames' count and size, still playable.
    cap = len(short) // 2
    kept = keep_one_video(src, tmp_path / "b", max_bytes=cap)
    assert kept == tmp_path / "b" / "short.mp4" and kept.stat().st_size <= cap
    assert read_frames(kept).shape == read_frames(src / "short.mp4").shape == (20, 96, 96, 3)
    assert (src / "short.mp4").read_bytes() == short  # the source is left as it was

    # No re-encoding fits: nothing is kept, no empty folder; no videos at all: the same.
    assert keep_one_video(src, tmp_path / "c", max_bytes=100) is None and not (tmp_path / "c").exists()
    assert keep_one_video(tmp_path / "none", tmp_path / "d", max_bytes=cap) is None and not (tmp_path / "d").exists()
