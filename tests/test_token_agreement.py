"""token-agreement: live world tokens vs the table's tokens for the same (replayed) states.

Fast: the per-episode comparison and the summary on hand-made numbers, the policy's world-accuracy
scoring and aggregation, and every bad-input path (exit code 2, one sentence, nothing written) on the
toy dataset, --policy.path included. Slow: real LIBERO demos recorded at 32 px, replayed through
LeRobot's env + processors; PNG storage must agree exactly, video is measured; a tiny C trained on the
PNG demo observes the replay, and its predictions equal those it makes on the dataset's own frames.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import TEST_DEVICE, TINY_POLICY_FLAGS, lerobot_train

from eval_sim.token_agreement import compare, config, inputs, replay, results_md
from lerobot_world.cli import main as cli_main

# ----------------------------------------------------------------------------------------------------
# Comparison and summary
# ----------------------------------------------------------------------------------------------------


def test_compare_episode_counts_hand_computed():
    table = [1, 2, 3, 3, 5]
    live = [1, 3, 3, 4, 5]  # frame 1: 2->3 (= table[2], adjacent); frame 3: 3->4 (not adjacent)
    decoded = [1, 2, 3, 3, 0]
    rec_states = np.zeros((5, 8), np.float32)
    live_states = rec_states.copy()
    live_states[2, 4] = -0.25
    dec_px = np.zeros((5, 3, 2, 2), np.uint8)
    live_px = dec_px.copy()
    live_px[0, 0, 0, 0] = 12  # frame 0: one pixel off by 12
    live_px[4, 1, 1, 1] = 4
    r = compare.compare_episode(table, live, decoded, live_states, rec_states, live_px, dec_px)
    assert r["frames"] == 5 and r["agree"] == 3 and r["agreement"] == pytest.approx(0.6)
    assert r["mismatches"] == [[1, 2, 3], [3, 3, 4]]
    assert r["mismatch_adjacent"] == 1 and r["first_mismatch"] == 1
    assert r["decoded_agree"] == 4
    assert r["state_max_abs_err"] == pytest.approx(0.25)
    assert r["pixel_mean_abs_diff"] == pytest.approx(16 / 60)  # 5 frames x 12 values
    assert r["pixel_max_abs_diff"] == 12 and r["pixel_identical_frames"] == 3
    # no wrap-around: unsigned pixels must not underflow
    r2 = compare.compare_episode([0], [0], [0], np.zeros((1, 8)), np.zeros((1, 8)), np.zeros((1, 3), np.uint8),
                            np.full((1, 3), 255, np.uint8))
    assert r2["pixel_mean_abs_diff"] == 255 and r2["agreement"] == 1.0 and r2["first_mismatch"] is None
    with pytest.raises(ValueError, match="same length"):
        compare.compare_episode([1, 2], [1], [1, 2], np.zeros((2, 8)), np.zeros((2, 8)), np.zeros((2, 1)), np.zeros((2, 1)))


def _ep(idx, table, live, px=0.0):
    n = len(table)
    r = compare.compare_episode(table, live, table, np.zeros((n, 8)), np.zeros((n, 8)), np.full((n, 4), px),
                           np.zeros((n, 4)))
    return {"episode_index": idx, "task_id": 0, "init_id": idx, "seed": idx, "task": "t"} | r


def test_summary_pools_frames_and_ranks_confusion_pairs():
    e0 = _ep(0, [1, 1, 2, 2], [1, 7, 2, 9], px=1.0)  # (1,7), (2,9)
    e1 = _ep(1, [1, 1, 5, 5, 5, 5], [7, 1, 5, 5, 5, 5], px=3.0)  # (1,7)
    s = compare.summarize([e0, e1])
    assert (s["frames"], s["agree"], s["mismatches"]) == (10, 7, 3)
    assert s["agreement"] == pytest.approx(0.7)
    assert s["top_pairs"][0] == {"table": 1, "live": 7, "count": 2}
    assert s["top_pairs"][1] == {"table": 2, "live": 9, "count": 1} and s["distinct_mismatch_pairs"] == 2
    assert s["pixel_mean_abs_diff"] == pytest.approx((4 * 1.0 + 6 * 3.0) / 10)  # frame-weighted
    assert s["decoded_agreement"] == 1.0 and s["state_max_abs_err"] == 0.0
    assert compare.summarize([e1], top_k=1)["top_pairs"] == [{"table": 1, "live": 7, "count": 1}]


def test_markdown_and_paragraph_show_the_numbers():
    eps = [_ep(0, [1, 1, 2, 2], [1, 7, 2, 2], px=2.0)]
    r = {
        "command": "lerobot-world token-agreement --x", "dataset": {"repo_id": "local/d", "root": "/d"},
        "source": {"suite": "libero_object", "image_size": 32, "init": "fixed", "use_videos": True},
        "table": {"path": "/t", "encoder": "pixel_pca", "vocab_size": 8}, "image_key": "observation.images.image",
        "overall": compare.summarize(eps), "episodes": eps,
    }
    para = results_md.summary_paragraph(r)
    assert "3/4 frames (75.0%)" in para and "h264 video" in para and "1->7 x1" in para and "\n" not in para
    md = results_md.render_markdown(r)
    assert "| 0 | 0 | 0 | 0 | 4 | 3 | 0.7500 | 1 (0) | 1 | 4 |" in md
    assert "| 1 | 7 | 1 |" in md and para in md


# ----------------------------------------------------------------------------------------------------
# --policy.path: the policy's world accuracy along the replay (scoring and aggregation)
# ----------------------------------------------------------------------------------------------------


def test_world_summary_hand_computed():
    w = compare.world_summary([3, 1, 0], [2, 2, 0], [4, 2, 0])
    assert w["world_accuracy"] == {"1": 0.75, "2": 0.5, "3": None}
    assert w["world_copy_baseline"] == {"1": 0.5, "2": 1.0, "3": None}
    # means over the horizons with pairs only (k=3 has none), the same k for model and copy
    assert w["mean"] == pytest.approx(0.625) and w["copy_mean"] == pytest.approx(0.75) and w["pairs"] == 6
    none = compare.world_summary([0, 0], [0, 0], [0, 0])
    assert none["mean"] is None and none["copy_mean"] is None and none["world_accuracy"] == {"1": None, "2": None}
    with pytest.raises(ValueError, match="same length"):
        compare.world_summary([1], [1, 0], [1])


def _rec(correct, copy, count, n_pred=1, same=0, frames=10):
    return compare.world_summary(correct, copy, count) | {"n_predictions": n_pred, "observed_equals_live": same, "frames": frames}


def test_pool_world_pools_pairs_over_episodes():
    a = _rec([1, 0], [1, 1], [1, 1], n_pred=1, same=9)
    b = _rec([3, 3], [0, 0], [3, 3], n_pred=3, same=10)
    o = compare.pool_world([a, b])
    assert o["count"] == [4, 4] and o["correct"] == [4, 3] and o["copy_correct"] == [1, 1]
    assert o["world_accuracy"] == {"1": 1.0, "2": 0.75} and o["mean"] == pytest.approx(0.875)  # pooled, not a mean of means
    assert o["copy_mean"] == pytest.approx(0.25) and o["pairs"] == 8
    assert (o["n_predictions"], o["observed_equals_live"], o["frames"]) == (4, 19, 20)
    with pytest.raises(ValueError, match="no episodes"):
        compare.pool_world([])


class _ScriptedWorldPolicy:
    """Stands in for world_vla: select_action observes observed[t]; a new prediction tensor every `every` calls,
    and (unlike world_vla) the previous prediction object stays in last_world_predicted in between."""

    def __init__(self, observed, predictions, every):
        import types

        self.config = types.SimpleNamespace(future_offset=2)
        self.observed, self.predictions, self.every = observed, predictions, every
        self.world_corruption = "shuffle"  # the observer must switch corruption off

    def reset(self):
        self.t, self.last_world_observed, self.last_world_predicted = 0, None, None

    def select_action(self, batch):
        import torch

        assert batch["preprocessed"] and batch["step"] == self.t
        self.last_world_observed = torch.tensor([self.observed[self.t]])
        if self.t % self.every == 0:
            self.last_world_predicted = torch.tensor([self.predictions[self.t // self.every]])
        self.t += 1
        return torch.zeros(1, 7)


def test_policy_observer_scores_each_new_prediction_once():
    import types

    pol = _ScriptedWorldPolicy(observed=[1, 1, 2, 2, 3, 3], predictions=[[1, 2], [3, 3], [3, 9]], every=2)
    obs = replay.PolicyObserver(types.SimpleNamespace(policy=pol, preprocessor=lambda b: {**b, "preprocessed": True}))
    assert pol.world_corruption is None and obs.horizon == 2
    for run in range(2):  # reset() clears everything between episodes
        obs.reset()
        for t in range(6):
            obs(t, {"step": t})
        r = obs.result([1, 1, 2, 2, 3, 0])
        # t=0 [1,2]: k1 1=1 ok, k2 2=2 ok; t=2 [3,3]: k1 3!=2, k2 3=3 ok; t=4 [3,9]: k1 3=3 ok, k2 off the end
        assert r["count"] == [3, 2] and r["correct"] == [2, 2] and r["copy_correct"] == [3, 0]
        assert r["world_accuracy"] == {"1": pytest.approx(2 / 3), "2": 1.0} and r["mean"] == pytest.approx(5 / 6)
        assert r["copy_mean"] == pytest.approx(0.5)
        assert r["predictions"] == [[0, [1, 2]], [2, [3, 3]], [4, [3, 9]]] and r["n_predictions"] == 3
        assert r["observed_equals_live"] == 5 and r["frames"] == 6
    with pytest.raises(ValueError, match="observed 6 frames"):
        obs.result([1, 2])


def test_markdown_and_paragraph_show_the_policy_numbers():
    eps = [_ep(0, [1, 1, 2, 2], [1, 1, 2, 2]), _ep(3, [5, 5], [5, 5])]
    eps[0]["policy"] = _rec([2, 1], [2, 0], [2, 2], n_pred=2, same=4, frames=4) | {"split": "train"}
    eps[1]["policy"] = _rec([0, 0], [1, 0], [1, 0], n_pred=1, same=2, frames=2) | {"split": "held-out"}
    overall = compare.summarize(eps) | {"policy": compare.pool_world([e["policy"] for e in eps])}
    r = {
        "command": "lerobot-world token-agreement --x", "dataset": {"repo_id": "local/d", "root": "/d"},
        "source": {"suite": "libero_object", "image_size": 32, "init": "fixed", "use_videos": False},
        "table": {"path": "/t", "encoder": "pixel_pca", "vocab_size": 8}, "image_key": "observation.images.image",
        "policy": {"path": "/ckpt", "variant": "C", "future_offset": 2, "n_action_steps": 10, "device": "cpu"},
        "overall": overall, "episodes": eps,
    }
    para = results_md.summary_paragraph(r)
    assert "\n" not in para and "World prediction along the demonstrated states (policy C at /ckpt" in para
    # pooled: k1 2/3, k2 1/2 -> mean 0.583; copy k1 3/3, k2 0/2 -> 0.5
    assert "accuracy 0.583 averaged over k=1..2 vs copy baseline 0.500 on the same 5 (t, t+k) pairs" in para
    assert "policy's own trajectories in eval-sim" in para
    md = results_md.render_markdown(r)
    assert "## World prediction along the demonstrated states: policy C" in md
    assert "| 0 | train | model | 1.000 | 0.500 | 0.750 |" in md and "| 0 | train | copy | 1.000 | 0.000 | 0.500 |" in md
    assert "| 3 | held-out | model | 0.000 | — | 0.000 |" in md  # the one missing-value mark
    assert "| all |  | model | 0.667 | 0.500 | 0.583 |" in md and "| pairs | | | 3 | 2 | 5 |" in md
    assert "on 6/6 frames" in md
    # without a policy: no policy section, no policy sentence
    r0 = r | {"policy": None, "overall": compare.summarize(eps)}
    assert "World prediction" not in results_md.summary_paragraph(r0) and "World prediction" not in results_md.render_markdown(r0)


# ----------------------------------------------------------------------------------------------------
# Bad input: exit code 2, one sentence, nothing written (no simulator needed)
# ----------------------------------------------------------------------------------------------------

TOY = "local/toy_libero"


@pytest.fixture(scope="module")
def toy_table(toy_dataset_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ta_tables") / "toy_v8"
    cli_main(["tokenize", f"--dataset.repo_id={TOY}", f"--dataset.root={toy_dataset_root}", f"--output_dir={out}",
              "--vocab_size=8", "--num_workers=0"])
    return out


def _fake_demos_results(root: Path, **change) -> None:
    """A results.json as `lerobot-world demos` writes it, consistent with the dataset at ``root``."""
    from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata

    meta = LeRobotDatasetMetadata(TOY, root=root)
    eps = [{"task_id": 0, "key": e, "init_id": e, "seed": e, "success": True, "steps": int(n), "task": t[0]}
           for e, (n, t) in enumerate(zip(meta.episodes["length"], meta.episodes["tasks"], strict=True))]
    eps.insert(1, {"task_id": 0, "key": 99, "init_id": 99, "seed": 99, "success": False, "steps": 5, "task": "x"})
    for e, fields in change.items():
        eps[int(e.lstrip("e"))].update(fields)
    res = {"command": "lerobot-world demos ...", "config": {"suite": "libero_object", "image_size": 32, "init": "fixed",
                                                            "max_steps": None, "use_videos": True},
           "episodes": eps, "dataset": {"root": str(root), "repo_id": TOY}}
    (root / "results.json").write_text(json.dumps(res))


@pytest.fixture
def demo_like_root(toy_dataset_root, tmp_path) -> Path:
    root = tmp_path / "toy_copy"
    shutil.copytree(toy_dataset_root, root)
    _fake_demos_results(root)
    return root


def _error(capsys, out: Path, *args) -> str:
    with pytest.raises(SystemExit) as e:
        cli_main(["token-agreement", f"--dataset.repo_id={TOY}", f"--output_dir={out}", *args])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*")), "nothing may be written on bad input"
    return err


def test_dataset_without_demos_results_is_refused(toy_dataset_root, toy_table, tmp_path, capsys):
    err = _error(capsys, tmp_path / "o", f"--dataset.root={toy_dataset_root}", f"--world_tokens={toy_table}")
    assert "results.json" in err and "lerobot-world demos" in err and str(toy_dataset_root) in err


def test_episode_out_of_range_is_refused(demo_like_root, toy_table, tmp_path, capsys):
    err = _error(capsys, tmp_path / "o", f"--dataset.root={demo_like_root}", f"--world_tokens={toy_table}",
                 "--episodes=[0,12]")
    assert "--episodes=[0, 12]" in err and "episode 12" in err and "0..11" in err
    err = _error(capsys, tmp_path / "o", f"--dataset.root={demo_like_root}", f"--world_tokens={toy_table}",
                 "--episodes=[]")
    assert "non-empty" in err


def test_table_of_another_dataset_is_refused(demo_like_root, toy_table, tmp_path, capsys):
    other = tmp_path / "other_table"
    shutil.copytree(toy_table, other)
    meta = json.loads((other / "meta.json").read_text())
    meta["fingerprint"] = "0" * 64  # a table made from different frames
    (other / "meta.json").write_text(json.dumps(meta))
    err = _error(capsys, tmp_path / "o", f"--dataset.root={demo_like_root}", f"--world_tokens={other}")
    assert "does not match dataset" in err and "000000000000" in err and "lerobot-world tokenize" in err
    err = _error(capsys, tmp_path / "o", f"--dataset.root={demo_like_root}", f"--world_tokens={tmp_path / 'nope'}")
    assert "nope" in err and "does not exist" in err
    err = _error(capsys, tmp_path / "o", f"--dataset.root={demo_like_root}")
    assert "--world_tokens is required" in err


def test_results_json_of_another_dataset_is_refused(demo_like_root, toy_table, tmp_path, capsys):
    _fake_demos_results(demo_like_root, e3={"steps": 7})  # record 3 = dataset episode 2
    err = _error(capsys, tmp_path / "o", f"--dataset.root={demo_like_root}", f"--world_tokens={toy_table}")
    assert "episode 2 has 7 steps" in err and "results.json" in err


def _policy_config(path: Path, table: Path | None = None, **kw) -> Path:
    """A checkpoint's config.json (no weights: every --policy.path check before loading reads only the config)."""
    from lerobot_world.policy.configuration_world_vla import WorldVLAConfig
    from lerobot_world.tokens.table import WorldTokenTable

    if table is not None:
        t = WorldTokenTable.load(table)
        kw = {"world_tokenizer_spec": (table / "tokenizer_spec.json").read_text(), "world_table_fingerprint": t.fingerprint,
              "world_vocab_size": t.vocab_size, "world_image_key": t.meta["image_key"]} | kw
    WorldVLAConfig(**({"variant": "C"} | kw)).save_pretrained(path)
    return path


def test_policy_that_predicts_no_world_tokens_is_refused(demo_like_root, toy_table, tmp_path, capsys):
    from lerobot.policies.act.configuration_act import ACTConfig

    ACTConfig().save_pretrained(tmp_path / "act")
    base = [f"--dataset.root={demo_like_root}", f"--world_tokens={toy_table}"]
    err = _error(capsys, tmp_path / "o", *base, f"--policy.path={tmp_path / 'act'}")
    assert "is a 'act' policy" in err and "world_vla" in err and "B, C or C_no_world_input" in err
    a = _policy_config(tmp_path / "a", toy_table, variant="A")
    err = _error(capsys, tmp_path / "o", *base, f"--policy.path={a}")
    assert "variant 'A'" in err and "does not predict world tokens" in err
    err = _error(capsys, tmp_path / "o", *base, f"--policy.path={tmp_path / 'nope'}")
    assert "nope" in err and "does not exist" in err
    (tmp_path / "empty").mkdir()
    err = _error(capsys, tmp_path / "o", *base, f"--policy.path={tmp_path / 'empty'}")
    assert "no config.json" in err


def test_policy_trained_with_another_table_is_refused(demo_like_root, toy_table, tmp_path, capsys):
    base = [f"--dataset.root={demo_like_root}", f"--world_tokens={toy_table}"]
    other = _policy_config(tmp_path / "fp", toy_table, world_table_fingerprint="0" * 64)
    err = _error(capsys, tmp_path / "o", *base, f"--policy.path={other}")
    assert "another world-token table" in err and "fingerprint 000000000000" in err
    assert f"--policy.world_tokens={toy_table}" in err
    spec = json.loads((toy_table / "tokenizer_spec.json").read_text()) | {"vocab_size": 16}
    other = _policy_config(tmp_path / "v16", toy_table, world_vocab_size=16, world_tokenizer_spec=json.dumps(spec))
    err = _error(capsys, tmp_path / "o", *base, f"--policy.path={other}")
    assert "vocab size 16 vs 8" in err and "tokenizer spec" in err
    other = _policy_config(tmp_path / "cam", toy_table, world_image_key="observation.images.image2")
    err = _error(capsys, tmp_path / "o", *base, f"--policy.path={other}")
    assert "camera 'observation.images.image2'" in err


def test_policy_for_other_images_or_tasks_is_refused(demo_like_root, toy_table, tmp_path, capsys):
    from lerobot.configs.types import FeatureType, PolicyFeature

    base = [f"--dataset.root={demo_like_root}", f"--world_tokens={toy_table}"]
    big = {"observation.images.image": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 64, 64))}
    other = _policy_config(tmp_path / "big", toy_table, input_features=big)
    err = _error(capsys, tmp_path / "o", *base, f"--policy.path={other}")
    assert "takes 64x64 images" in err and "32x32" in err
    other = _policy_config(tmp_path / "tasks", toy_table, tasks=["open the drawer"])
    err = _error(capsys, tmp_path / "o", *base, f"--policy.path={other}")
    assert "was not trained on task" in err


def test_matching_policy_config_passes_validation(demo_like_root, toy_table, tmp_path):
    ckpt = _policy_config(tmp_path / "ok", toy_table)
    cfg = config.TokenAgreementConfig(world_tokens=str(toy_table), output_dir=tmp_path / "o", policy=config.PolicyArgs(str(ckpt)))
    cfg.dataset.repo_id, cfg.dataset.root = TOY, str(demo_like_root)
    inp = inputs.validate(cfg)
    assert inp.policy_cfg.variant == "C" and not (tmp_path / "o").exists()


def test_tokenizer_weights_must_equal_the_table(toy_table):
    from lerobot_world.tokens.table import WorldTokenTable

    t = WorldTokenTable.load(toy_table)
    a, b = t.build_tokenizer(), t.build_tokenizer()
    inputs.check_tokenizer_state(a, b, "ckpt", str(toy_table))
    b.codebook[3, 0] += 1e-9
    with pytest.raises(config.TokenAgreementError, match=r"ckpt: its world tokenizer's weights differ .*\(codebook\)"):
        inputs.check_tokenizer_state(a, b, "ckpt", str(toy_table))


def test_existing_output_dir_is_refused(demo_like_root, toy_table, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(SystemExit) as e:
        cli_main(["token-agreement", f"--dataset.repo_id={TOY}", f"--dataset.root={demo_like_root}",
                  f"--world_tokens={toy_table}", f"--output_dir={out}"])
    assert e.value.code == 2 and "already exists" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


# ----------------------------------------------------------------------------------------------------
# Real LIBERO replay (slow)
# ----------------------------------------------------------------------------------------------------


def _record(base: Path, name: str, use_videos: bool) -> tuple[Path, Path, str]:
    """One recorded demo episode (libero_object task 0, 32 px) and its V=8 table: (root, table, repo_id)."""
    root, table, repo = base / f"{name}_demos", base / f"{name}_table", f"local/ta_{name}"
    cli_main(["demos", "--suite=libero_object", "--task_ids=0", "--episodes_per_task=1", "--image_size=32",
              "--num_workers=1", "--seed=0", "--init=random", f"--use_videos={str(use_videos).lower()}",
              f"--output_dir={root}", f"--repo_id={repo}"])
    cli_main(["tokenize", f"--dataset.repo_id={repo}", f"--dataset.root={root}", f"--output_dir={table}",
              "--vocab_size=8", "--eval_split=0", "--num_workers=0"])
    return root, table, repo


def _measure(demo: tuple[Path, Path, str], out: Path, *extra: str) -> dict:
    root, table, repo = demo
    cli_main(["token-agreement", f"--dataset.repo_id={repo}", f"--dataset.root={root}",
              f"--world_tokens={table}", "--episodes=[0]", f"--output_dir={out}", *extra])
    res = json.loads((out / "results.json").read_text())
    assert (out / "results.md").is_file() and res["episodes"][0]["episode_index"] == 0
    assert res["source"]["image_size"] == 32
    return res


@pytest.fixture(scope="module")
def png_demo(tmp_path_factory) -> tuple[Path, Path, str]:
    return _record(tmp_path_factory.mktemp("ta_png"), "png", use_videos=False)


@pytest.mark.slow
def test_replayed_demo_tokens_match_the_table(png_demo, tmp_path):
    """PNG (lossless) storage: the replay reproduces the recorded states and frames exactly, so every live
    token equals the table's. h264 storage: states still exact, pixels differ, agreement is measured."""
    png = _measure(png_demo, tmp_path / "png_agreement")
    assert png["source"]["use_videos"] is False and png["policy"] is None and "policy" not in png["episodes"][0]
    o = png["overall"]
    assert o["frames"] > 50 and o["agreement"] == 1.0 and o["mismatches"] == 0, o
    assert o["state_max_abs_err"] < 1e-6 and o["pixel_mean_abs_diff"] == 0.0 and o["decoded_agreement"] == 1.0

    vid = _measure(_record(tmp_path, "video", use_videos=True), tmp_path / "video_agreement")
    assert vid["source"]["use_videos"] is True
    o = vid["overall"]
    assert 0.0 <= o["agreement"] <= 1.0 and o["agree"] + o["mismatches"] == o["frames"] > 50
    assert o["state_max_abs_err"] < 1e-6 and o["decoded_agreement"] == 1.0
    assert o["pixel_mean_abs_diff"] > 0.0  # yuv420p chroma subsampling alone makes the decode lossy


@pytest.mark.slow
def test_policy_along_the_replay_predicts_as_on_the_dataset_frames(png_demo, tmp_path):
    """A tiny C (a few lerobot-train steps on the PNG demo) observes the replay. Its numbers are there and in
    [0, 1]; and since PNG storage is lossless, the predictions it made along the replay equal the ones it makes
    on the dataset's own frames at the same steps (same processors, select_action after reset): the harness
    hands the policy exactly the demonstrated observations."""
    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.envs.configs import LiberoEnv as LiberoEnvConfig

    from eval_sim.policies import load_policy

    root, table, repo = png_demo
    run = tmp_path / "c_run"
    result = lerobot_train(
        ["--policy.type=world_vla", "--policy.variant=C", f"--policy.world_tokens={table}", f"--dataset.repo_id={repo}",
         f"--dataset.root={root}", f"--output_dir={run}", "--steps=4", "--batch_size=4", "--save_freq=4",
         "--num_workers=0", "--wandb.enable=false", "--seed=0", *TINY_POLICY_FLAGS],
        cwd=tmp_path,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    ckpt = run / "checkpoints" / "last" / "pretrained_model"
    out = tmp_path / "agreement"
    res = _measure(png_demo, out, f"--policy.path={ckpt}", f"--device={TEST_DEVICE}")

    pol, o, (ep,) = res["policy"], res["overall"], res["episodes"]
    assert (pol["variant"], pol["future_offset"], pol["n_action_steps"]) == ("C", 3, 10) and pol["path"] == str(ckpt)
    assert o["agreement"] == 1.0 and o["pixel_mean_abs_diff"] == 0.0
    w = ep["policy"]
    assert w["split"] == "train" and w["frames"] == ep["frames"] == o["policy"]["frames"]
    assert w["observed_equals_live"] == ep["frames"]  # the checkpoint's tokenizer is the table's
    assert w["n_predictions"] == -(-ep["frames"] // 10)  # one per action chunk of 10 steps
    assert set(w["world_accuracy"]) == {"1", "2", "3"} and all(c > 0 for c in w["count"])
    for x in [*w["world_accuracy"].values(), *w["world_copy_baseline"].values(), w["mean"], w["copy_mean"]]:
        assert x is not None and 0.0 <= x <= 1.0
    assert o["policy"]["mean"] == w["mean"] and o["policy"]["copy_mean"] == w["copy_mean"]
    md = (out / "results.md").read_text()
    assert "## World prediction along the demonstrated states: policy C" in md
    assert "policy's own trajectories in eval-sim" in results_md.summary_paragraph(res)

    # The same policy on the dataset's own (lossless) frames, through the same processors.
    size = res["source"]["image_size"]
    env_cfg = LiberoEnvConfig(task="libero_object", task_ids=[0], observation_height=size, observation_width=size)
    lp = load_policy(str(ckpt), env_cfg, device=TEST_DEVICE)
    ds = LeRobotDataset(repo, root=root)
    keys = ["observation.images.image", "observation.images.image2", "observation.state"]
    lp.policy.reset()
    preds, last = [], None
    for t in range(ep["frames"]):
        item = ds[t]
        batch = lp.preprocessor({**{k: item[k][None] for k in keys}, "task": [item["task"]]})
        with torch.inference_mode():
            lp.policy.select_action(batch)
        pr = lp.policy.last_world_predicted
        if pr is not None and pr is not last:
            preds.append([t, [int(x) for x in pr[0]]])
        last = pr
    assert preds == w["predictions"]
