"""The report: tables from run directories, seeds as the unit, paired comparisons, and claims that follow them.

The fixtures write synthetic run directories in the matrix layout: per-episode closed-loop records
(suite, task, init state, env seed, success, world counts) aggregated by eval_sim's own metrics, and
per-held-out-episode offline sums as eval-offline writes them.
"""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from eval_sim import metrics
from lerobot_world import stats
from lerobot_world.study.report import ReportError, build_report, interpretation, main

MODES = ("random", "shuffle", "mask")
SUITE = "libero_object"
TASKS = (0, 1)
INITS = range(15)  # closed-loop episodes per task and run
HELDOUT = [(ep, ep % 2) for ep in range(10)]  # (episode index, task index) of the held-out episodes
N_VALUES = 70  # 10 chunk steps x 7 action dims per held-out episode
K = 2


def _world_ep(changed_hits: int, with_changed: bool = True) -> dict:
    w = {"correct": [6, 5], "copy_correct": [5, 4], "count": [8, 8]}
    if with_changed:
        w.update(changed_count=[3, 4], changed_correct=[changed_hits, changed_hits], top5_correct=[8, 7],
                 changed_top5_correct=[3, 3])
    return w


def _sim_results(episodes: list[dict], horizon: int | None, corruption: str = "none") -> dict:
    grid = [100, 200]
    per_task = [{"suite": SUITE, "task_id": t, "task": f"task {t}",
                 **metrics.aggregate_episodes([e for e in episodes if e["task_id"] == t], grid, horizon)}
                for t in sorted({e["task_id"] for e in episodes})]
    return {"command": f"lerobot-world eval-sim --corruption={corruption}", "seed": 1000,
            "episode_seeds": "seed + episode_index (per task)", "env": {"max_steps": 200},
            "overall": metrics.aggregate_episodes(episodes, grid, horizon), "per_task": per_task,
            "episodes": episodes}


def _sim_episodes(p_success: float, rng: np.random.Generator, world: dict | None) -> list[dict]:
    eps = []
    for t in TASKS:
        for i in INITS:
            success = bool(rng.random() < p_success)
            eps.append({"suite": SUITE, "task_id": t, "task": f"task {t}", "episode_index": i, "init_state_id": i,
                        "seed": 1000 + i, "success": success, "length": 80 if success else 200,
                        "goal_fraction": 1.0 if success else 0.0, "jerk": 0.01,
                        "chunk_jump": {"boundary": 0.02, "within": 0.01, "n_boundary": 5, "n_within": 40},
                        "world": world})
    return eps


def _offline(variant: str, seed: int, mse: float, rng: np.random.Generator, heldout=HELDOUT, corrupt_ratio=1.0) -> dict:
    """One checkpoint's eval-offline entry with per-episode sums (clean/corrupted squared error, world counts)."""
    per_ep = []
    for ep, task in heldout:
        se = float(N_VALUES * (mse + rng.uniform(-0.05, 0.05)))
        world = None
        if variant != "A":
            hits = 0 if variant == "C" else 2  # C copies its input: no hit where the token changes
            world = {"valid": [8, 8], "copy": [5, 5], "top1": [7, 6] if variant == "C" else [6, 6], "top5": [8, 8],
                     "changed": [3, 3], "top1_changed": [hits, hits], "top5_changed": [3, 3]}
        per_ep.append({"episode_index": ep, "task_index": task, "n_frames": 20, "n_chunk_steps": 10,
                       "n_values": N_VALUES, "se_sum": se,
                       "corrupted_se_sum": {m: se * corrupt_ratio for m in MODES}, "world": world})
    total = sum(e["se_sum"] for e in per_ep) / (N_VALUES * len(per_ep))
    small = len(heldout) < stats.MIN_UNITS
    metric = {"value": total, "ci95": None if small else [total * 0.9, total * 1.1]}
    entry = {
        "variant": variant,
        "action": {"n_frames": 20 * len(heldout), "n_episodes": len(heldout), "n_chunk_steps": 10 * len(heldout),
                   "n_action_dims": 7,
                   "normalized": {"mse": metric, "l1": metric, "first_step_mse": metric,
                                  "per_dim": {"names": ["x", "yaw"], "mse": [total / 2, total * 1.5],
                                              "mse_ci95": None if small else [[0.01, 0.02], [0.1, 0.2]]}},
                   "raw": {"mse": metric, "l1": metric, "first_step_mse": metric}},
        "world": None,
        "corruption": {"uses_world_input": variant == "C", "clean_mse": total,
                       "modes": {m: {"mse": total * corrupt_ratio, "ratio": corrupt_ratio,
                                     "ratio_ci95": None if small else [corrupt_ratio, corrupt_ratio]} for m in MODES}},
        "intervals": {"unit": "held-out episode", "n_units": len(heldout), "n_resampled_units": len(heldout),
                      "min_units": stats.MIN_UNITS, "too_small": small, "note": stats.TOO_SMALL if small else None},
        "per_episode": per_ep,
    }
    if variant != "A":
        per_k = [{"k": k, "n": 80, "top1": 0.8, "top5": 1.0, "copy": 0.625, "bigram_top1": 0.6, "n_changed": 30,
                  "top1_changed": 0.0 if variant == "C" else 2 / 3, "top5_changed": 1.0, "copy_changed": 0.0}
                 for k in range(1, K + 1)]
        entry["world"] = {"K": K, "vocab_size": 8, "per_k": per_k, "pooled": {"n_changed": 60},
                          "avg": {"top1": 0.8, "top1_ci95": None, "top5": 1.0, "copy": 0.625, "bigram_top1": 0.6,
                                  "bigram_top5": 0.9, "top1_changed": per_k[0]["top1_changed"], "top5_changed": 1.0}}
    return {"command": f"lerobot-world eval-offline --policy.path={variant}_s{seed}", "checkpoints": [entry]}


# variant: (offline MSE, closed-loop success probability)
ARMS = {"A": (0.50, 0.30), "B": (0.50, 0.30), "C": (0.30, 0.90), "C_no_world_input": (0.47, 0.30)}


def _write_run(root, variant, seed, offline: dict | None, sim: dict | None, corrupted: dict | None = None):
    run = root / "runs" / f"{variant}_s{seed}"
    run.mkdir(parents=True)
    (run / "state.json").write_text(json.dumps({"name": f"{variant}_s{seed}", "variant": variant, "seed": seed,
                                                "sweep": None}))
    (run / "policy_config.json").write_text(json.dumps({"type": "world_vla", "variant": variant, "future_offset": K,
                                                        "world_vocab_size": 8, "dim_model": 32, "world_context": 2,
                                                        "world_context_stride": 1}))
    if offline:
        (run / "eval_offline").mkdir()
        (run / "eval_offline" / "results.json").write_text(json.dumps(offline))
    if sim:
        (run / "eval_sim").mkdir()
        (run / "eval_sim" / "results.json").write_text(json.dumps(sim))
    for mode, res in (corrupted or {}).items():
        (run / f"eval_sim_{mode}").mkdir()
        (run / f"eval_sim_{mode}" / "results.json").write_text(json.dumps(res))
    return run


@pytest.fixture
def runs_dir(tmp_path):
    """Seeds 0 and 1 for every arm, plus an extra seed 2 for C alone (far off, to show if it were pooled).

    Clear effects: C vs C_no_world_input (offline MSE 0.30 vs 0.47, success 90% vs 30%). No effect: B vs A
    (same MSE and success probability, independent draws). C's shuffle corruption breaks most episodes,
    stored in reversed order with one episode the clean run does not have.
    """
    root = tmp_path / "matrix"
    for seed in (0, 1, 2):
        for variant, (mse, p) in ARMS.items():
            if seed == 2 and variant != "C":
                continue
            rng = np.random.default_rng(100 * seed + list(ARMS).index(variant))
            if seed == 2:
                mse, p = 0.9, 0.0  # pooled, this would drag C down and flip its comparison
            world = None if variant == "A" else _world_ep(3 if variant == "B" else 1, with_changed=variant != "C_no_world_input")
            eps = _sim_episodes(p, rng, world)
            corrupted = None
            if variant == "C":
                broken = [dict(e, success=e["success"] and e["init_state_id"] % 3 == 0) for e in eps]
                broken.reverse()
                broken.append(dict(eps[0], init_state_id=99, seed=1099))  # not in the clean run: excluded
                corrupted = {"shuffle": _sim_results(broken, K, "shuffle"),
                             "random": _sim_results(list(reversed(eps)), K, "random")}  # same outcomes, other order
            _write_run(root, variant, seed,
                       _offline(variant, seed, mse, rng, corrupt_ratio=1.8 if variant == "C" else 1.0),
                       _sim_results(eps, None if variant == "A" else K), corrupted)
    return root


def _line(text: str, start: str) -> str:
    hits = [ln for ln in text.splitlines() if ln.startswith(start)]
    assert len(hits) == 1, (start, hits)
    return hits[0]


def test_report_tables_plots_and_sections(runs_dir, tmp_path):
    out = build_report([runs_dir], tmp_path / "out" / "REPORT.md", n_bootstrap=500)
    text = out.read_text()
    for heading in ("## 1. Configurations", "## 2. Seeds", "## 3. Offline evaluation", "## 4. World corruption",
                    "## 5. Closed-loop LIBERO evaluation", "## 6. Comparisons between arms",
                    "## 7. What the numbers support", "## 8. Provenance"):
        assert heading in text
    assert (tmp_path / "out" / "world_accuracy.png").stat().st_size > 1000
    assert (tmp_path / "out" / "success_within_T.png").stat().st_size > 1000
    assert "| B_s0 | B | no | yes | aux MLP head on pooled encoder output; a loss only, never reaches the actions |" in text
    assert "the action queries read them (block mask); world input = current + past tokens (stride s) | 0 |" in text
    assert "| C_no_world_input_s0 | C_no_world_input | no | yes | C's queries and mask, no world input |" in text
    # changed-pair world accuracy beside the copy baseline, offline and closed loop; old records show "—"
    assert "| top-1 on changed pairs (copy = 0) |" in text
    # closed loop, C per episode: hits [6, 5] of [8, 8], copy [5, 4], top-5 [8, 7]; changed pairs [3, 4] with 1 hit
    # each and 3 top-5 hits each; means over k: 0.6875, 0.5625, 0.9375, (1/3 + 1/4)/2, (1 + 3/4)/2
    c_row = _line(text, "| C_s0 | 0.688 | 0.562 | 0.938 | 0.292 | 0.875 |")
    assert c_row.endswith("| k1:0.33 k2:0.25 | 240 | 90–120 |")  # 30 episodes: pairs per k, changed pairs per k
    assert _line(text, "| C_no_world_input_s0 | 0.688 | 0.562 | — | — | — |")  # records without changed counts
    # per arm, pooled over k: C hits 2 of 7 changed pairs per episode
    assert _line(text, "| C | 0.688 [0.688, 0.688] | 0.562 [0.562, 0.562] | 0.286 [0.286, 0.286] |")
    # offline: C copies (0 hits on changed pairs), B hits 2 of 3 per episode and k
    assert "| C | 0, 1 | 20 |" in text and "| 0.000 [0.000, 0.000] |" in _line(text, "| C | 0, 1 | 20 |")
    assert _line(text, "| B | 0, 1 | 20 |").endswith("| 0.667 [0.667, 0.667] |")
    assert "accuracy on changed pairs (copy = 0)" in text
    # per action dimension, each run's own values with its interval
    assert "| run | seed | x | yaw |" in text
    a0 = json.loads((runs_dir / "runs" / "A_s0" / "eval_offline" / "results.json").read_text())["checkpoints"][0]
    x, yaw = a0["action"]["normalized"]["per_dim"]["mse"]
    assert _line(text, f"| A_s0 | 0 | {x:.4f} [0.0100, 0.0200] | {yaw:.4f} [0.1000, 0.2000] |")
    report = json.loads((tmp_path / "out" / "REPORT.json").read_text())
    assert report["plots"] == ["world_accuracy.png", "success_within_T.png"]
    assert [c["what"] for c in report["comparisons"]] == ["aux loss", "actions reading the forecast", "world input"]


def test_extra_seed_is_reported_apart_and_never_pooled(runs_dir, tmp_path):
    out = build_report([runs_dir], tmp_path / "R.md", n_bootstrap=500)
    text = out.read_text()
    report = json.loads((tmp_path / "R.json").read_text())
    assert report["statistics"]["seeds"] == {"sim": [0, 1], "offline": [0, 1]}
    assert {e["run"] for e in report["statistics"]["extra_seeds"]} == {"C_s2"}
    assert "### Runs with extra seeds, not in comparisons" in text
    assert "| C_s2 | C | 2 | closed loop | success 0/30 |" in text
    for c in report["comparisons"]:
        assert c["sim"]["seeds"] == [0, 1] and c["offline"]["seeds"] == [0, 1]
        assert c["sim"]["diff"]["n_units"] == 60 and c["offline"]["diff"]["n_units"] == 20
    # C's per-arm closed-loop row: 60 episodes of seeds 0 and 1 (seed 2's 30 failures are not in it)
    row = _line(text, "| C | 0, 1 | 60 |")
    rate = float(row.split("|")[4].split("%")[0])
    assert rate > 80, row


def test_a_clear_effect_is_claimed_and_a_null_one_is_not(runs_dir, tmp_path):
    text = build_report([runs_dir], tmp_path / "R.md", n_bootstrap=1000).read_text()
    world = _line(text, "- Closed-loop success, C vs C_no_world_input (world input):")
    assert "the interval excludes 0: C succeeds more often than C_no_world_input" in world and "McNemar" in world
    aux = _line(text, "- Closed-loop success, B vs A (aux loss):")
    assert "the interval includes 0: no effect claimed" in aux
    off = _line(text, "- Offline action MSE, C vs C_no_world_input (world input):")
    assert "the interval excludes 0: C has lower error than C_no_world_input" in off
    assert "no effect claimed" in _line(text, "- Offline action MSE, B vs A (aux loss):")
    # the claims come from the paired difference; check them against stats directly
    report = json.loads((tmp_path / "R.json").read_text())
    by = {c["what"]: c for c in report["comparisons"]}
    assert by["world input"]["sim"]["diff"]["excludes_zero"] is True
    assert by["world input"]["sim"]["diff"]["ci95"][0] > 0.2
    # the same numbers from the raw episode records, paired by (seed, suite, task, init state, env seed)
    seeds, strata, xc, xn = [], [], [], []
    for seed in (0, 1):
        def load(v):
            res = json.loads((runs_dir / "runs" / f"{v}_s{seed}" / "eval_sim" / "results.json").read_text())
            return {(e["suite"], e["task_id"], e["init_state_id"], e["seed"]): e["success"] for e in res["episodes"]}

        c, n = load("C"), load("C_no_world_input")
        for key in sorted(c):
            seeds.append(seed)
            strata.append(key[:2])
            xc.append(float(c[key]))
            xn.append(float(n[key]))
    expect = stats.paired_difference(xc, None, xn, None, seeds, strata, n_bootstrap=1000, rng_seed=0)
    assert by["world input"]["sim"]["diff"] == json.loads(json.dumps(expect))
    assert by["world input"]["sim"]["mcnemar"] == stats.mcnemar_exact(xc, xn)
    assert by["aux loss"]["sim"]["diff"]["excludes_zero"] is False
    assert by["world input"]["offline"]["diff"]["ci95"][1] < 0
    # offline corruption: C moves (ratio 1.8); the others are measured controls with exactly 0 change
    assert "- Offline corruption, C: corrupting the world input changes the action error" in text
    assert "- Offline corruption, B: no mode moves the action error beyond its interval (the control" in text
    assert "interval overlap" not in text and "intervals overlap" not in text
    assert stats.ONE_SEED not in text and "one seed (" not in text


def test_n_too_small_with_three_heldout_episodes_and_one_seed(tmp_path):
    root = tmp_path / "small"
    for variant, (mse, _) in ARMS.items():
        rng = np.random.default_rng(list(ARMS).index(variant))
        _write_run(root, variant, 0, _offline(variant, 0, mse, rng, heldout=HELDOUT[:3]), None)
    text = build_report([root], tmp_path / "R.md", n_bootstrap=500).read_text()
    c_mse = json.loads((root / "runs" / "C_s0" / "eval_offline" / "results.json").read_text())["checkpoints"][0]
    value = c_mse["action"]["normalized"]["mse"]["value"]
    assert f"| C | 0 | 3 | {value:.4f} (n too small) |" in text  # per arm
    assert f"| C_s0 | 0 | 3 | 60 | {value:.4f} (n too small) |" in text  # per run: no [x, x] from 3 episodes
    assert "n too small for an interval (3 units): no claim" in _line(text, "- Offline action MSE, C vs C_no_world_input")
    assert "- Offline: one seed (0): every statement below about offline results compares checkpoints, not methods." in text
    assert "| C vs C_no_world_input (world input) | 0 | 3 |" in text and "(n too small) |" in text
    # Offline corruption over 3 episodes: no claim in either direction, not "no evidence".
    corr = _line(text, "- Offline corruption, C (")
    assert "n too small (fewer than 5 held-out episodes): no claim either way." in corr
    assert "no evidence" not in text


def test_closed_loop_corruption_is_paired_episode_by_episode(runs_dir, tmp_path):
    text = build_report([runs_dir], tmp_path / "R.md", n_bootstrap=500).read_text()
    # "random" holds the clean outcomes in reversed order: paired by key the difference is exactly 0
    rnd = _line(text, "| C | random | 0, 1 | 60 |")
    assert "| +0.0 pp [+0.0, +0.0] | 0/0, p=1.000 |" in rnd
    shuffle = _line(text, "| C | shuffle | 0, 1 | 60 |")
    assert "2 unmatched episode(s) excluded (2 / 0)" in shuffle  # one per seed, init state 99
    assert shuffle.split("|")[8].strip().startswith("0/")  # no corrupted-only success: only clean-only ones
    diff = float(shuffle.split("|")[7].split("pp")[0])
    assert diff < -30
    line = _line(text, "- Closed-loop corruption (shuffle), C:")
    assert "the interval excludes 0" in line and "60 paired episodes" in line


def test_each_run_links_its_smallest_rollout_video_relative_to_the_report(runs_dir, tmp_path):
    """#16: one rollout video per arm, linked from the report: the smallest mp4 of a run's clean eval-sim (what an
    export keeps), with the episode it shows; runs without a video file get no row."""
    for name, sizes in (("A_s0", (300, 100)), ("C_s0", (50,))):
        res_path = runs_dir / "runs" / name / "eval_sim" / "results.json"
        res = json.loads(res_path.read_text())
        (res_path.parent / "videos").mkdir()
        for i, size in enumerate(sizes):
            ep = res["episodes"][i]
            ep["video"] = f"videos/{SUITE}_task{ep['task_id']:02d}_ep{i:03d}.mp4"
            (res_path.parent / ep["video"]).write_bytes(b"0" * size)
        res_path.write_text(json.dumps(res))
    out = build_report([runs_dir], tmp_path / "out" / "REPORT.md", n_bootstrap=100)
    section = out.read_text().split("### Rollout videos", 1)[1].split("\n## ", 1)[0]
    rows = [ln.strip("| ").split(" | ") for ln in section.splitlines() if ln.startswith("| ")][1:]
    assert [r[0] for r in rows] == ["A_s0", "C_s0"]
    a_eps = json.loads((runs_dir / "runs" / "A_s0" / "eval_sim" / "results.json").read_text())["episodes"]
    assert rows[0][2] == str(a_eps[1]["init_state_id"]) and rows[0][3] == ("success" if a_eps[1]["success"] else "failure")
    link = rows[0][5].split("](", 1)[1].rstrip(")")
    assert link.endswith("_ep001.mp4") and (out.parent / link).resolve().stat().st_size == 100


def test_report_is_deterministic(runs_dir, tmp_path):
    a = build_report([runs_dir], tmp_path / "a" / "REPORT.md", n_bootstrap=300)
    b = build_report([runs_dir], tmp_path / "b" / "REPORT.md", n_bootstrap=300)
    assert a.read_bytes() == b.read_bytes()
    assert a.with_suffix(".json").read_bytes() == b.with_suffix(".json").read_bytes()
    c = build_report([runs_dir], tmp_path / "c" / "REPORT.md", n_bootstrap=300, bootstrap_seed=1)
    assert c.read_bytes() != a.read_bytes()  # the intervals do depend on the bootstrap seed


def test_report_bad_input(runs_dir, tmp_path, capsys):
    with pytest.raises(ReportError, match="does not exist"):
        build_report([tmp_path / "nope"], tmp_path / "R.md")
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "empty_run"), f"--output={tmp_path / 'R.md'}"])
    assert exc.value.code == 2
    assert "is not a run directory" in capsys.readouterr().err
    assert not (tmp_path / "R.md").exists()
    # the same arm and seed twice: which one to pair is ambiguous
    twice = tmp_path / "twice"
    twice.mkdir()
    for name in ("C_s0", "C_s0_again"):
        run = twice / name
        run.mkdir()
        (run / "state.json").write_text(json.dumps({"name": name, "variant": "C", "seed": 0, "sweep": None}))
        (run / "eval_sim").mkdir()
        (run / "eval_sim" / "results.json").write_text(
            json.dumps(_sim_results(_sim_episodes(0.5, np.random.default_rng(0), None), None)))
    with pytest.raises(ReportError, match="two main runs of arm C with seed 0"):
        build_report([twice / "C_s0", twice / "C_s0_again"], tmp_path / "R2.md")


def test_training_fit_is_the_mean_of_the_last_logged_intervals(runs_dir, tmp_path):
    """Section 1 shows each run's fit on its training batches (the end of its lerobot-train log), so a reader
    can tell under-fitting from over-fitting; runs without a log get no row."""
    def line(step, l1, extra=""):
        return (f"INFO 2026-12-05 16:14:18 ot_train.py:641 step:{step} smpl:188K ep:669 epch:5.22 loss:{l1 + 0.1:.3f} "
                f"grdn:2.000 lr:1.0e-04 updt_s:0.500 data_s:0.020 smp/s:29 l1_loss:{l1:.3f} kld_loss:0.000{extra}\n")
    a_log = "".join(line(f"{k}K", 0.5) for k in range(5))  # older intervals, outside the last 10
    a_log += "".join(line("12K", 0.100 + 0.002 * i) for i in range(10))  # mean 0.109
    a_log += "INFO 2026-12-05 16:16:36 ot_train.py:687 Checkpoint policy after step 12000\n"
    (runs_dir / "runs" / "A_s0" / "train_log_tail.txt").write_text(a_log)
    (runs_dir / "runs" / "C_s0" / "train.log").write_text(  # a cache folder's full log, three intervals
        "".join(line("1K", 0.2, " world_ce:0.300 world_top1:0.900 world_top1_k1:0.950") for _ in range(3)))
    text = build_report([runs_dir], tmp_path / "out" / "REPORT.md", n_bootstrap=100).read_text()
    section = text.split("### Training fit", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in section.splitlines() if ln.startswith("| ") and not ln.startswith("| run")]
    assert rows == ["| A_s0 | 10 | 0.109 | — | — | 2.00 | 0.520 | 3.8% |",
                    "| C_s0 | 3 | 0.200 | 0.300 | 0.900 | 2.00 | 0.520 | 3.8% |"]


def test_provenance_labels_each_attempt_of_a_stage(runs_dir, tmp_path):
    """A run's commands.sh lists every attempt, in order; the report says which one each line was, so a reader
    can tell an interrupted evaluation or a restarted training from the one that gave the numbers."""
    from lerobot_world.study.results import append_command, commands_header

    run = runs_dir / "runs" / "C_s0"
    header = commands_header("C_s0", "m", "~/.cache/lerobot-world/m")
    train = 'lerobot-train --policy.type=world_vla --output_dir="$OUTPUT_DIR"/runs/C_s0/train'
    resume = 'lerobot-train --config_path="$OUTPUT_DIR"/runs/C_s0/train/checkpoints/last/pretrained_model/train_config.json --resume=true'
    sim = 'lerobot-world eval-sim --output_dir="$OUTPUT_DIR"/runs/C_s0/eval_sim_random'
    for stage, line in [("train", train), ("train", train), ("train", resume), ("eval_sim_random", sim + " #1"),
                        ("eval_sim_random", sim + " #2"), ("eval_sim_random", sim + " #3")]:
        append_command(run, stage, line, header)
    text = build_report([runs_dir], tmp_path / "out" / "REPORT.md", n_bootstrap=100).read_text()
    section = text.split("## 8. Provenance", 1)[1].split("- **C_s0**", 1)[1].split("\n- **", 1)[0]
    assert [ln.split(": `", 1)[0] for ln in section.strip().splitlines()[1:]] == [
        "  - train (did not reach a checkpoint; restarted below)", "  - train",
        "  - train (resumed from its last checkpoint)",
        "  - eval_sim_random (did not finish; redone below)", "  - eval_sim_random (did not finish; redone below)",
        "  - eval_sim_random"]
    assert section.count("#3`") == 1 and "eval_sim_random: `" + sim + " #3`" in section


def test_a_sweep_run_is_its_own_calibration_curve_never_pooled_with_its_arm(runs_dir, tmp_path):
    """A sweep run (e.g. C at lambda_world 0.1) evaluated at earlier checkpoints gets its own rows
    "C (lambda_world=0.1)" in the calibration section; the main arm's rows and tables do not include it."""
    rng = np.random.default_rng(7)
    for name, sweep, p in (("C_s0", None, 0.0), ("C_s0_lw0.1", {"lambda_world": 0.1}, 1.0)):
        run = runs_dir / "runs" / name
        if sweep:
            _write_run(runs_dir, "C", "0_lw0.1", None, None)
            (run / "state.json").write_text(json.dumps({"name": name, "variant": "C", "seed": 0, "sweep": sweep}))
        (run / "train_config.json").write_text(json.dumps({"steps": 8, "seed": 0}))
        step = run / "eval_sim_step4"
        step.mkdir()
        (step / "results.json").write_text(json.dumps(_sim_results(_sim_episodes(p, rng, None), K)))
        if sweep:
            (run / "eval_sim").mkdir()
            (run / "eval_sim" / "results.json").write_text(json.dumps(_sim_results(_sim_episodes(p, rng, None), K)))
    text = build_report([runs_dir], tmp_path / "R.md", n_bootstrap=200).read_text()
    assert _line(text, "| C | 4 | 0 | 30 | 0% ")
    assert _line(text, "| C (lambda_world=0.1) | 4 | 0 | 30 | 100% ")
    assert _line(text, "| C (lambda_world=0.1) | 8 | 0 | 30 | 100% ")
    report = json.loads((tmp_path / "R.json").read_text())
    assert report["statistics"]["seeds"] == {"sim": [0, 1], "offline": [0, 1]}
    # the per-arm closed-loop row of C is still seeds 0 and 1 of the main runs only (60 episodes, ~90%)
    assert float(_line(text, "| C | 0, 1 | 60 |").split("|")[4].split("%")[0]) > 80


def test_a_bootstrap_interval_the_exact_test_does_not_back_is_not_claimed():
    """Ten paired episodes, A 10/10 and B 6/10 (the demo's shape): the percentile bootstrap excludes 0, but with four
    discordant pairs McNemar's exact p is 0.125, so the statement must not claim that B succeeds less often."""
    study = SimpleNamespace(seeds={"offline": [0], "sim": [0]}, arms={"offline": {}, "sim": {}})
    sim = {"diff": {"value": -0.4, "a": 0.6, "b": 1.0, "ci95": [-0.7, -0.1], "excludes_zero": True, "n_units": 10},
           "mcnemar": stats.mcnemar_exact([True] * 6 + [False] * 4, [True] * 10)}
    assert sim["mcnemar"]["c"] == 4 and sim["mcnemar"]["p_value"] > 0.05
    item = {"a": "B", "b": "A", "what": "aux loss", "offline": None, "sim": sim}
    line = _line("\n".join(interpretation(study, [item])), "- Closed-loop success, B vs A (aux loss):")
    assert "succeeds less often" not in line and "no effect claimed" in line and "p = 0.125" in line
    # the same interval with the exact test agreeing (20 discordant pairs, one way) is claimed
    sim["mcnemar"] = stats.mcnemar_exact([False] * 20 + [True] * 30, [True] * 50)
    line = _line("\n".join(interpretation(study, [item])), "- Closed-loop success, B vs A (aux loss):")
    assert "the interval excludes 0: B succeeds less often than A" in line
