"""`lerobot-world eval-offline` on the session's four tiny lerobot-train checkpoints (conftest)."""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TOY_REPO_ID, VARIANTS

from lerobot_world.stats import MIN_UNITS

MODES = ("random", "shuffle", "mask")
TIMING_KEYS = ("timing",)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Single-threaded forwards: on the shared 2-core machine two threads ran ~5x slower under load."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _run_cli(args: list[str]):
    from lerobot_world.cli import main

    main(["eval-offline", *args])


def _strip_timing(ckpt_result: dict) -> dict:
    return {k: v for k, v in ckpt_result.items() if k not in TIMING_KEYS}


@pytest.fixture(scope="module")
def four_way(trained_checkpoints, toy_dataset_root, tmp_path_factory):
    """One eval-offline run over all four variants (repeated --policy.path), through the CLI entry point."""
    out = tmp_path_factory.mktemp("eval_offline") / "four"
    args = [f"--policy.path={trained_checkpoints[v][0]}" for v in VARIANTS]
    args += [
        f"--dataset.repo_id={TOY_REPO_ID}",
        f"--dataset.root={toy_dataset_root}",
        f"--output_dir={out}",
        "--batch_size=16",
        "--n_bootstrap=200",
        "--seed=0",
    ]
    _run_cli(args)
    return out, json.loads((out / "results.json").read_text()), args


def _by_variant(results: dict) -> dict:
    return {c["variant"]: c for c in results["checkpoints"]}


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def test_writes_both_files_with_every_metric(four_way):
    out, res, _ = four_way
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "results.md"]
    assert res["format"] == "lerobot_world.eval_offline/1"
    by = _by_variant(res)
    assert set(by) == set(VARIANTS)
    md = (out / "results.md").read_text()
    assert "## Comparison" in md
    for v in VARIANTS:
        c = by[v]
        assert f"## {v}" in md
        a = c["action"]
        assert a["n_frames"] > 0 and a["n_episodes"] == len(c["split"]["heldout_episodes"])
        # 3 tasks x 4 episodes, eval_split 0.25: one held-out episode per task, fewer than MIN_UNITS -> no interval
        iv = c["intervals"]
        assert a["n_episodes"] == 3 and iv["n_units"] == 3 and iv["strata"] == "task_index"
        assert iv["too_small"] is True and iv["min_units"] == MIN_UNITS and iv["note"] == "n too small"
        for unit in ("normalized", "raw"):
            for key in ("mse", "l1", "first_step_mse", "first_step_l1"):
                m = a[unit][key]
                assert _finite(m["value"]) and m["value"] > 0
                assert m["ci95"] is None, (v, unit, key, m)
            assert len(a[unit]["per_dim"]["mse"]) == 7 and all(_finite(x) for x in a[unit]["per_dim"]["mse"])
            assert len(a[unit]["per_dim"]["l1"]) == 7
        cor = c["corruption"]
        assert _finite(cor["clean_mse"])
        for mode in MODES:
            assert _finite(cor["modes"][mode]["mse"]) and _finite(cor["modes"][mode]["ratio"])
        t = c["timing"]
        assert t["frames"] == a["n_frames"] and t["frames_per_s"] > 0 and 0 < t["forward_fraction"] <= 1
        if v == "A":
            assert c["world"] is None
            continue
        w = c["world"]
        K = w["K"]
        assert [r["k"] for r in w["per_k"]] == list(range(1, K + 1))
        for r in w["per_k"]:
            for key in ("top1", "top5", "copy", "bigram_top1", "bigram_top5"):
                assert _finite(r[key]) and 0 <= r[key] <= 1, (v, r)
            assert r["top5"] >= r["top1"]
        for key in ("top1", "top5", "copy", "bigram_top1", "bigram_top5"):
            assert _finite(w["avg"][key])
        # Baselines in the same table as the model, per k, in the markdown.
        assert "copy top-1" in md and "bigram top-1" in md and "top-1 changed" in md
    assert f"{_fmt4(by['C']['action']['normalized']['mse']['value'])} (n too small)" in md
    assert "intervals: n too small (0 resampled held-out episode(s) of 3, fewer than 5)" in md


def _fmt4(x: float) -> str:
    from lerobot_world.offline.results_md import _f

    return _f(x)


def test_per_episode_sums_rebuild_the_aggregates(four_way):
    """per_episode holds what pairing two arms needs; its sums give back the pooled numbers exactly."""
    by = _by_variant(four_way[1])
    for v in VARIANTS:
        c = by[v]
        eps = c["per_episode"]
        assert [e["episode_index"] for e in eps] == c["split"]["heldout_episodes"]
        assert sorted(e["task_index"] for e in eps) == [0, 1, 2]  # one held-out episode per task
        assert sum(e["n_frames"] for e in eps) == c["action"]["n_frames"]
        assert sum(e["n_chunk_steps"] for e in eps) == c["action"]["n_chunk_steps"]
        n_values = sum(e["n_values"] for e in eps)
        assert n_values == c["action"]["n_chunk_steps"] * c["action"]["n_action_dims"] == c["action"]["n_chunk_steps"] * 7
        mse = sum(e["se_sum"] for e in eps) / n_values
        assert mse == pytest.approx(c["action"]["normalized"]["mse"]["value"], rel=1e-12)
        assert mse == pytest.approx(c["corruption"]["clean_mse"], rel=1e-12)
        for mode in MODES:
            corrupted = sum(e["corrupted_se_sum"][mode] for e in eps) / n_values
            assert corrupted == pytest.approx(c["corruption"]["modes"][mode]["mse"], rel=1e-12)
        if v == "A":
            assert all(e["world"] is None for e in eps)
            continue
        w = c["world"]
        for r in w["per_k"]:
            i = r["k"] - 1
            col = lambda key: sum(e["world"][key][i] for e in eps)  # noqa: B023, E731
            assert col("valid") == r["n"] and col("copy") / r["n"] == pytest.approx(r["copy"])
            assert col("top1") / r["n"] == pytest.approx(r["top1"])
            # changed pairs are exactly the pairs the copy baseline misses; copy scores 0 on them
            assert r["n_changed"] == col("changed") == r["n"] - col("copy")
            assert r["copy_changed"] == (0.0 if r["n_changed"] else None)
            if r["n_changed"]:
                assert r["top1_changed"] == pytest.approx(col("top1_changed") / r["n_changed"])
                assert r["top5_changed"] >= r["top1_changed"] and 0 <= r["top1_changed"] <= 1
                # accuracy on all pairs = copy-free hits on changed pairs + hits on unchanged pairs
                assert col("top1_changed") <= col("top1")
        assert w["pooled"]["n_changed"] == sum(r["n_changed"] for r in w["per_k"])


def test_per_episode_records_pair_two_arms_on_the_same_frames(four_way):
    """The report's offline pairing: same held-out episode, same value count, a paired difference."""
    from lerobot_world import stats

    by = _by_variant(four_way[1])
    c = {e["episode_index"]: e for e in by["C"]["per_episode"]}
    a = {e["episode_index"]: e for e in by["A"]["per_episode"]}
    keys, only_c, only_a = stats.match_units(c, a)
    assert keys and not only_c and not only_a
    assert all(c[k]["n_values"] == a[k]["n_values"] for k in keys)
    d = stats.paired_difference(
        [c[k]["se_sum"] for k in keys], [c[k]["n_values"] for k in keys],
        [a[k]["se_sum"] for k in keys], [a[k]["n_values"] for k in keys],
        seeds=[0] * len(keys), strata=[c[k]["task_index"] for k in keys],
    )
    expect = by["C"]["action"]["normalized"]["mse"]["value"] - by["A"]["action"]["normalized"]["mse"]["value"]
    assert d["value"] == pytest.approx(expect, rel=1e-9) and d["too_small"] and d["ci95"] is None


def test_copy_and_bigram_baselines_match_the_token_table(four_way, toy_world_table):
    """The copy baseline measured on the scored pairs equals token_stats and the table's own meta."""
    _, res, _ = four_way
    meta = json.loads((Path(toy_world_table) / "meta.json").read_text())
    horizons = {h["k"]: h for h in meta["stats"]["horizons"]}
    for v in ("B", "C", "C_no_world_input"):
        w = _by_variant(res)[v]["world"]
        assert w["copy_matches_token_stats"] and w["table_split_matches"]
        for r in w["per_k"]:
            assert r["copy"] == pytest.approx(horizons[r["k"]]["copy"], abs=1e-12)
            assert r["bigram_top1"] == pytest.approx(horizons[r["k"]]["bigram_top1"], abs=1e-12)
            assert r["n"] == horizons[r["k"]]["heldout_pairs"]


def test_corruption_ratio_is_measured_one_without_world_input(four_way):
    by = _by_variant(four_way[1])
    for v in ("A", "B", "C_no_world_input"):
        cor = by[v]["corruption"]
        assert cor["uses_world_input"] is False
        for mode in MODES:
            m = cor["modes"][mode]
            assert m["ratio"] == 1.0, (v, mode, m)
            assert m["mse"] == cor["clean_mse"]
            assert m["max_abs_action_change"] == 0.0
            if v != "A":  # world predictions also unchanged: nothing reached the model
                assert m["world_top1"] == cor["clean_world_top1"]


def test_trained_c_reacts_to_world_corruption(four_way):
    cor = _by_variant(four_way[1])["C"]["corruption"]
    assert cor["uses_world_input"] is True
    for mode in MODES:
        m = cor["modes"][mode]
        assert m["mse"] != cor["clean_mse"], mode
        assert m["ratio"] != 1.0 and m["max_abs_action_change"] > 0, mode


def test_raw_units_are_the_postprocessor_unnormalized_ones(four_way, toy_dataset):
    """Raw per-dim MSE = normalized per-dim MSE x std^2 (MEAN_STD), so raw really went through the stats."""
    std = toy_dataset.meta.stats["action"]["std"]
    c = _by_variant(four_way[1])["C"]["action"]
    for d in range(7):
        expect = c["normalized"]["per_dim"]["mse"][d] * float(std[d]) ** 2
        assert c["raw"]["per_dim"]["mse"][d] == pytest.approx(expect, rel=1e-3, abs=1e-9)


def test_heldout_episodes_are_the_training_runs_eval_episodes(four_way, trained_checkpoints):
    """Exactly what lerobot-train's make_train_eval_datasets held out, rebuilt from train_config.json."""
    from lerobot.configs.train import TrainPipelineConfig
    from lerobot.datasets.factory import make_train_eval_datasets

    import lerobot_world.policy.configuration_world_vla  # noqa: F401

    by = _by_variant(four_way[1])
    for v in ("A", "C"):
        ckpt, log = trained_checkpoints[v]
        train_cfg = TrainPipelineConfig.from_pretrained(ckpt)
        _, eval_ds = make_train_eval_datasets(train_cfg)
        assert sorted(eval_ds.episodes) == by[v]["split"]["heldout_episodes"]
        assert by[v]["action"]["n_frames"] == eval_ds.num_frames
        assert f"{len(eval_ds.episodes)} eval" in log  # lerobot-train's own "Train/eval split" log line


def test_deterministic_and_independent_of_grouping(four_way, trained_checkpoints, toy_dataset_root, tmp_path):
    """C alone, same seed -> exactly the numbers of C inside the four-way run (another process state, other
    batch composition of decoding, same seed)."""
    _, res, _ = four_way
    out = tmp_path / "c_alone"
    _run_cli(
        [
            f"--policy.path={trained_checkpoints['C'][0]}",
            f"--dataset.repo_id={TOY_REPO_ID}",
            f"--dataset.root={toy_dataset_root}",
            "--batch_size=16",
            "--n_bootstrap=200",
            f"--output_dir={out}",
            "--seed=0",
        ]
    )
    alone = json.loads((out / "results.json").read_text())["checkpoints"][0]
    together = _by_variant(res)["C"]
    assert _strip_timing(alone) == _strip_timing(together)


def _heldout_batch(ev, toy_dataset, n=12):
    import torch
    from lerobot.datasets.factory import resolve_delta_timestamps
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset(
        TOY_REPO_ID,
        root=toy_dataset.root,
        episodes=ev.split.heldout,
        delta_timestamps=resolve_delta_timestamps(ev.cfg, toy_dataset.meta),
        return_uint8=True,
    )
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=n, sampler=list(range(0, len(ds), 3)))))
    for key in toy_dataset.meta.camera_keys:
        batch[key] = batch[key].float() / 255.0
    return batch


@pytest.fixture(scope="module")
def c_eval(trained_checkpoints, toy_dataset):
    from lerobot_world.offline.checkpoints import load_checkpoint
    from lerobot_world.offline.scoring import CheckpointEval

    ev = CheckpointEval(load_checkpoint(str(trained_checkpoints["C"][0])), toy_dataset.meta, "cpu")
    yield ev, _heldout_batch(ev, toy_dataset)
    ev.close()


def test_seed_drives_the_random_corruption(c_eval):
    import numpy as np

    ev, batch = c_eval
    runs = {}
    for seed in (0, 0, 1):
        ev.start(seed)
        ev.step(batch)
        runs.setdefault(seed, []).append({k: np.concatenate(v) for k, v in ev.rows.items()})
    same, other = runs[0], runs[1][0]
    assert all(np.array_equal(same[0][k], same[1][k]) for k in same[0])
    assert np.array_equal(same[0]["clean_se"], other["clean_se"])
    assert not np.array_equal(same[0]["random_se"], other["random_se"])


def test_world_hits_match_the_policys_own_forward_metrics(c_eval):
    """Top-1/top-5 from the captured logits equal what policy.forward reports on the same batch."""
    ev, batch = c_eval
    ev.start(0)
    ev.step(batch)
    _, info = ev.policy.forward(ev.pre(dict(batch)))
    valid = ev.rows["w_valid"][0]
    for k in range(1, ev.K + 1):
        n = valid[:, k - 1].sum()
        assert n > 0
        assert ev.rows["w_clean_top1"][0][:, k - 1].sum() / n == pytest.approx(
            info[f"world_top1_k{k}"], abs=1e-6
        )
        assert ev.rows["w_clean_top5"][0][:, k - 1].sum() / n == pytest.approx(
            info[f"world_top5_k{k}"], abs=1e-6
        )


# --- bad input: one sentence, `error: ...`, exit status 2 -------------------------------------------------


def _expect_error(capsys, args, *needles):
    with pytest.raises(SystemExit) as exc:
        _run_cli(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    for n in needles:
        assert n in err[0], err[0]
    return err[0]


def test_bad_path(capsys, toy_dataset_root, tmp_path):
    _expect_error(
        capsys,
        [
            "--policy.path=/nonexistent/ckpt",
            f"--dataset.repo_id={TOY_REPO_ID}",
            f"--dataset.root={toy_dataset_root}",
            f"--output_dir={tmp_path / 'o'}",
        ],
        "/nonexistent/ckpt",
        "does not exist",
    )
    (tmp_path / "empty").mkdir()
    _expect_error(
        capsys,
        [
            f"--policy.path={tmp_path / 'empty'}",
            f"--dataset.root={toy_dataset_root}",
            f"--dataset.repo_id={TOY_REPO_ID}",
            f"--output_dir={tmp_path / 'o'}",
        ],
        "no config.json",
    )
    assert not (tmp_path / "o").exists()  # nothing written


def test_not_a_world_vla_checkpoint(capsys, toy_dataset, tmp_path):
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.utils.feature_utils import dataset_to_policy_features

    feats = dataset_to_policy_features(toy_dataset.meta.features)
    cfg = ACTConfig(
        input_features={k: f for k, f in feats.items() if k != "action"},
        output_features={"action": feats["action"]},
        pretrained_backbone_weights=None,
        dim_model=16,
        n_heads=2,
        dim_feedforward=16,
        n_encoder_layers=1,
        n_vae_encoder_layers=1,
        chunk_size=4,
        n_action_steps=4,
        device="cpu",
        push_to_hub=False,
    )
    ACTPolicy(cfg).save_pretrained(tmp_path / "act")
    _expect_error(
        capsys,
        [
            f"--policy.path={tmp_path / 'act'}",
            f"--dataset.repo_id={TOY_REPO_ID}",
            f"--dataset.root={toy_dataset.root}",
            f"--output_dir={tmp_path / 'o'}",
        ],
        "'act' policy",
        "not a world_vla policy",
    )


def test_dataset_without_the_policys_camera(capsys, trained_checkpoints, toy_dataset_root, tmp_path):
    """A copy of the toy dataset's metadata with the wrist camera removed."""
    root = tmp_path / "one_cam"
    shutil.copytree(toy_dataset_root / "meta", root / "meta")
    info = json.loads((root / "meta" / "info.json").read_text())
    del info["features"]["observation.images.image2"]
    (root / "meta" / "info.json").write_text(json.dumps(info))
    _expect_error(
        capsys,
        [
            f"--policy.path={trained_checkpoints['C'][0]}",
            f"--dataset.repo_id={TOY_REPO_ID}",
            f"--dataset.root={root}",
            f"--output_dir={tmp_path / 'o'}",
        ],
        "no camera 'observation.images.image2'",
    )


def test_console_script_error_has_no_traceback(tmp_path):
    exe = Path(sys.executable).parent / "lerobot-world"
    r = subprocess.run(
        [str(exe), "eval-offline", "--policy.path=/nope", f"--output_dir={tmp_path}/o"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "error: --policy.path=/nope does not exist" in r.stderr


def test_help(capsys):
    with pytest.raises(SystemExit) as exc:
        _run_cli(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--policy.path" in out and "--n_bootstrap" in out and "--output_dir" in out


def test_merge_repeated_policy_paths():
    from lerobot_world.offline.evaluate import _merge_policy_paths

    assert _merge_policy_paths(
        ["--policy.path=a", "--seed=1", "--policy.path", "b", "--policy.path=[c,d]"]
    ) == [
        "--seed=1",
        "--policy.path=[a,b,c,d]",
    ]
