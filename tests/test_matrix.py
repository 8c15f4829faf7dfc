"""Presets and the matrix runner: command construction (parsed by LeRobot's own draccus config),
run expansion/order, table sharing, resume state, and (slow) a real matrix killed and resumed."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY_POLICY_FLAGS, TOY_EVAL_SPLIT, TOY_REPO_ID, kill_job_when

REPO = Path(__file__).resolve().parent.parent


def _parse_train_args(args: list[str]):
    """Parse lerobot-train flags into LeRobot's TrainPipelineConfig exactly as lerobot-train's draccus does."""
    import draccus
    from lerobot.configs.train import TrainPipelineConfig

    import lerobot_policy_world_vla  # noqa: F401 - registers world_vla like plugin discovery does

    assert args[0] == "lerobot-train"
    return draccus.parse(TrainPipelineConfig, args=args[1:])


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------------
# presets
# ------------------------------------------------------------------------------------------------


def test_cpu_preset_is_the_measured_configuration():
    from lerobot_world.study.presets import load_preset

    p = load_preset("cpu_small")
    assert (p.policy["dim_model"], p.policy["n_encoder_layers"], p.policy["chunk_size"]) == (256, 2, 20)
    assert p.train["batch_size"] == 16
    # Offline by default (DESIGN §6): no weight download, no Hub push, wandb not forced online.
    assert p.policy["pretrained_backbone_weights"] is None and p.policy["push_to_hub"] is False
    assert p.train["wandb.mode"] == "offline"


@pytest.mark.parametrize("name", ["cpu_small", "gpu_libero"])
def test_preset_command_parses_as_lerobot_train_config(name, tmp_path):
    """Issue 8 Must-show 2: the preset dry-runs into a command that LeRobot's config parser accepts."""
    from lerobot_world.study.presets import load_preset, train_args

    preset = load_preset(name)
    args = ["lerobot-train", *train_args(preset, {"policy.variant": "C", "dataset.repo_id": "x/y"})]
    cfg = _parse_train_args(args + [f"--output_dir={tmp_path / 'o'}"])
    assert cfg.policy.type == "world_vla" and cfg.policy.variant == "C"
    for key, value in preset.policy.items():
        if key not in ("type", "device"):  # LeRobot itself falls back from cuda to cpu here
            assert getattr(cfg.policy, key) == value, key
    assert cfg.steps == preset.train["steps"] and cfg.batch_size == preset.train["batch_size"]


def test_gpu_preset_is_full_scale_libero():
    from lerobot_world.study.presets import load_preset

    p = load_preset("gpu_libero")
    assert p.train["dataset.repo_id"] == "HuggingFaceVLA/libero"
    assert p.policy["pretrained_backbone_weights"] == "ResNet18_Weights.IMAGENET1K_V1"
    assert "dinov2" in p.tokenize["encoder"]
    assert "estimate" in p.expected["source"].lower() and p.expected["hours_per_run"]


def test_bad_preset_keys_name_the_value(tmp_path):
    from lerobot_world.study.presets import PresetError, load_preset

    with pytest.raises(PresetError, match="policy.dimm_model"):
        load_preset("cpu_small", {"policy.dimm_model": 3})
    with pytest.raises(PresetError, match="wandb.bogus"):
        load_preset("cpu_small", {"wandb.bogus": 1})
    with pytest.raises(PresetError, match="no_such_preset"):
        load_preset("no_such_preset")
    bad = _write(tmp_path / "p.json", json.dumps({"policy": {"type": "act"}}))
    with pytest.raises(PresetError, match="'act'"):
        load_preset(bad)


# ------------------------------------------------------------------------------------------------
# matrix planning (no training)
# ------------------------------------------------------------------------------------------------

SWEEP_YAML = """
name: sweep_test
preset: cpu_small
dataset: {repo_id: local/toy, root: /data/toy}
variants: [A, B, C, C_no_world_input]
seeds: [0, 1]
extra_seeds: {C: [2]}
sweeps:
  - {key: future_offset, values: [4], variants: [C, C_no_world_input]}
  - {key: world_vocab_size, values: [16]}
  - {key: lambda_world, values: [0.5]}
wandb: {enable: true, mode: offline, project: p}
eval_offline: {enable: true}
"""


def test_matrix_expansion_order_tables_and_commands(tmp_path):
    from lerobot_world.study.matrix import load_config, make_plan, write_reproduce

    cfg = load_config(_write(tmp_path / "m.yaml", SWEEP_YAML), [f"--output_dir={tmp_path / 'out'}"])
    plan = make_plan(cfg)
    names = [r.name for r in plan.runs]
    # Seed 0 of all four arms first, then other seeds, then the sweeps.
    assert names[:4] == ["A_s0", "B_s0", "C_s0", "C_no_world_input_s0"]
    assert names[4:9] == ["A_s1", "B_s1", "C_s1", "C_no_world_input_s1", "C_s2"]
    assert set(names[9:]) == {
        "C_s0_K4", "C_no_world_input_s0_K4",
        "B_s0_V16", "C_s0_V16", "C_no_world_input_s0_V16",
        "B_s0_lw0.5", "C_s0_lw0.5", "C_no_world_input_s0_lw0.5",
    }
    # One table per (dataset, encoder, vocab), shared: the preset's V=64 and the swept V=16.
    assert sorted(p.name for p in plan.tables.values()) == ["local-toy__pixel_pca__v16", "local-toy__pixel_pca__v64"]
    assert plan.parallel == 1  # CPU preset: sequential

    by_name = {r.name: r for r in plan.runs}
    c = _parse_train_args(plan.train_command(by_name["C_s0_K4"]))
    assert (c.policy.variant, c.policy.future_offset, c.seed, c.job_name) == ("C", 4, 0, "C_s0_K4")
    assert c.policy.world_tokens.endswith("v64") and c.wandb.enable and c.wandb.mode == "offline"
    v16 = _parse_train_args(plan.train_command(by_name["B_s0_V16"]))
    assert v16.policy.world_tokens.endswith("v16") and v16.policy.world_vocab_size == 16
    a = _parse_train_args(plan.train_command(by_name["A_s1"]))
    assert a.policy.world_tokens is None and a.seed == 1
    assert plan.train_env(by_name["A_s1"]) == {"WANDB_RUN_GROUP": "sweep_test"}
    tok = plan.tokenize_command(next(iter(plan.tables)), tmp_path / "t")
    assert "--eval_split=0.2" in tok and "--dataset.root=/data/toy" in tok  # same split as lerobot-train

    text = write_reproduce(plan).read_text()
    assert text.count("lerobot-world tokenize") == 2
    assert text.count("lerobot-train --policy.type=world_vla") == len(plan.runs)
    assert "WANDB_RUN_GROUP=sweep_test lerobot-train" in text and "lerobot-world eval-offline" in text


@pytest.mark.parametrize(
    "yaml, match",
    [
        ("name: x\ndataset: {repo_id: a/b}\nvariants: [A, D]\n", "'D'"),
        ("name: x\ndataset: {repo_id: a/b}\nsweeps: [{key: dim_modell, values: [1]}]\n", "dim_modell"),
        ("name: x\nvariants: [A]\n", "dataset.repo_id"),
        ("name: x\ndataset: {repo_id: a/b}\npreset: nope\n", "nope"),
    ],
)
def test_matrix_bad_config_one_clear_error(yaml, match, tmp_path, capsys):
    from lerobot_world.study.matrix import main

    with pytest.raises(SystemExit) as e:
        main([f"--config={_write(tmp_path / 'm.yaml', yaml)}", "--dry_run"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and match in err and err.startswith("error: ") and "\n" not in err


STAGES_YAML = """
name: stages_test
preset: cpu_small
output_dir: ~/cache/stages_test
results_dir: res/stages_test
dataset: {repo_id: local/toy, root: ~/data/toy}
variants: [A, C]
seeds: [0]
overrides: {steps: 12, save_freq: 4}
eval_offline: {enable: true, checkpoints: [4]}
eval_sim:
  enable: true
  checkpoints: [4, 8, 12]
  extra_args: ["--env.task=libero_10", "--env.task_ids=[0,4]", "--n_episodes_per_task=3", "--max_steps=50"]
eval_sim_corruption: {enable: true, modes: [shuffle, mask], variants: [C], extra_args: ["--max_videos_per_task=0"]}
"""


def test_stages_corruption_and_checkpoints(tmp_path, monkeypatch):
    """Corruption stages reuse eval_sim's exact flags (+ --corruption); `checkpoints` evaluate
    checkpoints/<N>/pretrained_model into <stage>_step<N>; the final step is the stage's own; ~ expanded."""
    from lerobot_world.study.matrix import load_config, make_plan

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    plan = make_plan(load_config(_write(tmp_path / "m.yaml", STAGES_YAML)))
    assert plan.root == tmp_path / "home" / "cache" / "stages_test"
    assert plan.results_dir == tmp_path / "res" / "stages_test"
    assert plan.cfg.dataset.root == str(tmp_path / "home" / "data" / "toy")
    a, c = plan.runs
    assert [st.name for st in plan.stages(a)] == [
        "eval_offline", "eval_sim", "eval_offline_step4", "eval_sim_step4", "eval_sim_step8"]
    stages = {st.name: st for st in plan.stages(c)}
    assert list(stages) == ["eval_offline", "eval_sim", "eval_sim_shuffle", "eval_sim_mask",
                            "eval_offline_step4", "eval_sim_step4", "eval_sim_step8"]
    clean = stages["eval_sim"].command
    for mode in ("shuffle", "mask"):
        cmd = stages[f"eval_sim_{mode}"].command
        # Exactly the clean episodes' flags, then the corruption mode and the stage's own extra flags.
        assert cmd == [x.replace("/eval_sim", f"/eval_sim_{mode}") if x.startswith("--output_dir=") else x
                       for x in clean] + [f"--corruption={mode}", "--max_videos_per_task=0"]
    run_dir = c.dir(plan.root)
    assert stages["eval_sim_step8"].checkpoint == run_dir / "train" / "checkpoints" / "000008" / "pretrained_model"
    assert f"--policy.path={stages['eval_sim_step8'].checkpoint}" in stages["eval_sim_step8"].command
    assert f"--output_dir={run_dir / 'eval_sim_step8'}" in stages["eval_sim_step8"].command
    assert stages["eval_sim"].checkpoint.parent.name == "last" and stages["eval_sim_mask"].checkpoint.parent.name == "last"
    # The exported-run identity ignores the machine (cache folder, home) but not what is trained.
    spec = plan.run_spec(c)
    assert all(str(tmp_path) not in a for a in spec["train"] + sum(spec["stages"].values(), []))
    assert "--steps=12" in spec["train"] and "--dataset.root=~/data/toy" in spec["train"]


@pytest.mark.parametrize(
    "extra, match",
    [
        ("eval_sim: {enable: true, checkpoints: [5]}", "eval_sim.checkpoints contains 5"),
        ("eval_sim: {enable: true, checkpoints: [16]}", "eval_sim.checkpoints contains 16"),
        ("eval_offline: {enable: true, checkpoints: [0]}", "eval_offline.checkpoints contains 0"),
        ("eval_sim_corruption: {enable: true}", "eval_sim is not enabled"),
        ("eval_sim: {enable: true}\neval_sim_corruption: {enable: true, modes: [blur]}", "'blur'"),
        ("eval_sim: {enable: true}\neval_sim_corruption: {enable: true, variants: [D]}", "'D'"),
        ("eval_sim: {enable: true}\neval_sim_corruption: {enable: true, extra_args: ['--n_episodes_per_task=2']}",
         "'--n_episodes_per_task=2'"),
        ("eval_sim: {enable: true, extra_args: ['--corruption=mask']}\neval_sim_corruption: {enable: true}",
         "'--corruption=mask'"),
    ],
)
def test_bad_stage_config_one_clear_error(extra, match, tmp_path, capsys):
    from lerobot_world.study.matrix import main

    yaml = f"name: x\ndataset: {{repo_id: a/b}}\noverrides: {{steps: 12, save_freq: 4}}\n{extra}\n"
    with pytest.raises(SystemExit) as e:
        main([f"--config={_write(tmp_path / 'm.yaml', yaml)}", "--dry_run", f"--output_dir={tmp_path / 'o'}"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and match in err and "\n" not in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("use_amp, has_bf16_kernels, refused", [
    (True, False, True), (True, True, False), (False, False, False)])
def test_bf16_matrix_refused_on_a_cpu_without_bf16_kernels(use_amp, has_bf16_kernels, refused, tmp_path, monkeypatch,
                                                           capsys):
    """A use_amp CPU matrix on a CPU without bf16 kernels (bf16 there: 13 s/step vs ~1.5 s fp32) stops with one
    error before anything is written; with kernels, or in fp32, it is not in the way."""
    import torch

    from lerobot_world.study import matrix

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: has_bf16_kernels)
    yaml = (f"name: x\ndataset: {{repo_id: a/b}}\noverrides: {{steps: 12, save_freq: 4, "
            f"policy.use_amp: {str(use_amp).lower()}}}\n")
    config = _write(tmp_path / "m.yaml", yaml)
    plan = matrix.make_plan(matrix.load_config(config))
    if not refused:
        matrix._refuse_slow_bf16(plan)
        return
    with pytest.raises(SystemExit) as e:
        matrix.main([f"--config={config}", f"--output_dir={tmp_path / 'o'}"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "no bf16 kernels" in err and "--allow_slow_bf16=true" in err and "\n" not in err, err
    assert not (tmp_path / "o").exists()
    with pytest.raises(SystemExit) as e:
        matrix.main([f"--config={config}", "--allow_slow_bf16=maybe"])
    assert e.value.code == 2 and "'maybe'" in capsys.readouterr().err


def _eval_sim_config(cmd: list[str]):
    """An eval-sim stage command parsed by eval-sim's own CLI parser (no LIBERO needed)."""
    import draccus

    from eval_sim.evaluate import EvalSimConfig, _split_policy_args

    assert cmd[:2] == ["lerobot-world", "eval-sim"]
    path, _, rest = _split_policy_args(cmd[2:])
    return path, draccus.parse(EvalSimConfig, args=rest)


def test_study_configs_parse_into_the_planned_study(tmp_path, monkeypatch):
    """configs/matrix/cpu_study.yaml and cpu_calibration.yaml: runs, order, stages, and eval-sim flags that
    eval-sim's parser accepts; paired corruption; calibration checkpoints that lerobot-train saves."""
    from lerobot_world.study.matrix import load_config, make_plan

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(REPO)
    study = make_plan(load_config(REPO / "configs" / "matrix" / "cpu_study.yaml"))
    names = [r.name for r in study.runs]
    assert names[:4] == ["A_s0", "B_s0", "C_s0", "C_no_world_input_s0"] and len(names) == 12
    assert {r.seed for r in study.runs} == {0, 1, 2} and {r.variant for r in study.runs} == set(
        ["A", "B", "C", "C_no_world_input"])
    assert study.root == tmp_path / ".cache" / "lerobot-world" / "cpu_study"
    assert study.results_dir == REPO / "results" / "cpu_study"
    assert study.cfg.dataset.root == "../shared/data/libero10_demos_96"
    # The budget is the calibration's: the first checkpoint at which A's closed-loop success reached 20%.
    calib = REPO / "results" / "cpu_calibration" / "runs" / "A_s0"
    rates = {int(d.name.removeprefix("eval_sim_step")): json.loads((d / "results.json").read_text())["overall"]
             for d in calib.glob("eval_sim_step*")}
    final = json.loads((calib / "train_config.json").read_text())["steps"]
    rates[final] = json.loads((calib / "eval_sim" / "results.json").read_text())["overall"]
    assert study.steps() == min(n for n, r in rates.items() if 0.2 <= r["success_rate"] <= 0.8)
    by_name = {r.name: r for r in study.runs}
    assert [st.name for st in study.stages(by_name["A_s1"])] == ["eval_offline", "eval_sim"]
    c_stages = {st.name: st.command for st in study.stages(by_name["C_s2"])}
    assert list(c_stages) == ["eval_offline", "eval_sim", "eval_sim_random", "eval_sim_shuffle", "eval_sim_mask"]
    _, clean = _eval_sim_config(c_stages["eval_sim"])
    assert (clean.env.task, clean.env.task_ids, clean.n_episodes_per_task) == ("libero_10", [0, 4, 6, 7], 20)
    assert clean.max_steps is None and clean.init_state_start == 0 and clean.corruption == "none"
    for mode in ("random", "shuffle", "mask"):
        _, corrupted = _eval_sim_config(c_stages[f"eval_sim_{mode}"])
        assert corrupted.corruption == mode
        for key in ("n_episodes_per_task", "seed", "init_state_start", "max_steps"):
            assert getattr(corrupted, key) == getattr(clean, key), key
        assert (corrupted.env.task, corrupted.env.task_ids) == (clean.env.task, clean.env.task_ids)

    calib = make_plan(load_config(REPO / "configs" / "matrix" / "cpu_calibration.yaml"))
    assert [r.name for r in calib.runs] == ["A_s0"] and calib.steps() == 12000
    assert calib.results_dir == REPO / "results" / "cpu_calibration"
    stages = calib.stages(calib.runs[0])
    assert [st.name for st in stages] == ["eval_sim", "eval_sim_step2000", "eval_sim_step4000", "eval_sim_step6000",
                                          "eval_sim_step8000"]
    for st in stages:
        path, sim = _eval_sim_config(st.command)
        assert (sim.env.task, sim.env.task_ids, sim.n_episodes_per_task) == ("libero_10", [0, 4, 6, 7], 10)
        assert path == str(st.checkpoint)
    assert stages[1].checkpoint.parent.name == "002000"


def test_demo_calibration_scores_checkpoints_on_init_states_the_demo_does_not_report(tmp_path, monkeypatch):
    """configs/matrix/demo_calibration.yaml: A and C, a checkpoint every 500 steps scored in closed loop on
    init states 10..19, disjoint from the 0..9 that `make demo` reports, so the chosen budget is not fitted to
    the demo's own episodes."""
    from lerobot_world.study.matrix import load_config, make_plan

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(REPO)
    plan = make_plan(load_config(REPO / "configs" / "matrix" / "demo_calibration.yaml"))
    assert [r.name for r in plan.runs] == ["A_s0", "C_s0"]  # A and C at the demo's settings
    # C with a tenth of the world-loss weight, in its own folder: only that flag differs from C's training.
    lw = make_plan(load_config(REPO / "configs" / "matrix" / "demo_calibration_lw.yaml"))
    assert [r.name for r in lw.runs] == ["C_s0"] and lw.results_dir == REPO / "results" / "demo_calibration_lw"
    assert lw.cfg.dataset == plan.cfg.dataset and lw.cfg.eval_sim == plan.cfg.eval_sim
    c, c_lw = plan.runs[1], lw.runs[0]
    lw_cmd = [a.replace("demo_calibration_lw", "demo_calibration") for a in lw.train_command(c_lw)]  # its folders
    only_lw, only_c = set(lw_cmd) - set(plan.train_command(c)), set(plan.train_command(c)) - set(lw_cmd)
    assert (only_lw, only_c) == ({"--policy.lambda_world=0.1"}, {"--policy.lambda_world=1.0"})
    assert [[a.replace("demo_calibration_lw", "demo_calibration") for a in st.command] for st in lw.stages(c_lw)] == [
        st.command for st in plan.stages(c)]
    demo = make_plan(load_config(REPO / "configs" / "matrix" / "demo.yaml"))
    _, demo_sim = _eval_sim_config(demo.stages(demo.runs[0])[-1].command)
    demo_states = set(range(demo_sim.init_state_start, demo_sim.init_state_start + demo_sim.n_episodes_per_task))
    for run in plan.runs:
        stages = plan.stages(run)
        assert [st.name for st in stages] == ["eval_sim"] + [f"eval_sim_step{n}" for n in (500, 1000, 1500, 2000)]
        for st in stages:
            _, sim = _eval_sim_config(st.command)
            assert (sim.env.task, sim.env.task_ids, sim.corruption) == (demo_sim.env.task, demo_sim.env.task_ids, "none")
            states = set(range(sim.init_state_start, sim.init_state_start + sim.n_episodes_per_task))
            assert states == set(range(10, 20)) and not states & demo_states
    # The curve is measured at the demo's own settings (only the step budget differs), in fp32: the demo's
    # precision on a CPU without bf16 kernels, where the curve was measured (bf16 elsewhere: results/bf16_check).
    for key in ("log_freq", "dataset.eval_split", "tokenize.vocab_size"):
        assert plan.cfg.overrides[key] == demo.cfg.overrides[key], key
    assert plan.cfg.overrides["policy.use_amp"] is False and demo.cfg.overrides["policy.use_amp"] is True
    # The demo: four arms; C also under each world corruption on exactly the clean episodes.
    assert [r.name for r in demo.runs] == ["A_s0", "B_s0", "C_s0", "C_no_world_input_s0"]
    c_stages = {st.name: st.command for st in demo.stages(demo.runs[2])}
    assert list(c_stages) == ["eval_offline", "eval_sim", "eval_sim_random", "eval_sim_shuffle", "eval_sim_mask"]
    assert demo_states == set(range(10)) and demo_sim.max_steps is None  # LeRobot's 280-step libero_object limit
    for mode in ("random", "shuffle", "mask"):
        _, corrupted = _eval_sim_config(c_stages[f"eval_sim_{mode}"])
        assert corrupted.corruption == mode
        assert (corrupted.n_episodes_per_task, corrupted.init_state_start, corrupted.seed) == (
            demo_sim.n_episodes_per_task, demo_sim.init_state_start, demo_sim.seed)


def test_train_status_from_checkpoints(tmp_path):
    from lerobot_world.study.matrix import load_config, make_plan, train_status

    yaml = SWEEP_YAML + "overrides: {steps: '10'}\n"
    cfg = load_config(_write(tmp_path / "m.yaml", yaml), [f"--output_dir={tmp_path / 'o'}"])
    plan = make_plan(cfg)
    run = plan.runs[0]
    train = run.dir(plan.root) / "train"
    assert train_status(plan, run) == "new"
    train.mkdir(parents=True)
    assert train_status(plan, run) == "restart"  # died before its first checkpoint

    def ckpt(step):
        d = train / "checkpoints" / f"{step:06d}"
        (d / "training_state").mkdir(parents=True)
        (d / "pretrained_model").mkdir()
        (d / "training_state" / "training_step.json").write_text(json.dumps({"step": step}))
        last = train / "checkpoints" / "last"
        last.unlink(missing_ok=True)
        last.symlink_to(d.name)

    ckpt(5)
    assert train_status(plan, run) == "resume"
    assert plan.resume_command(run)[1].endswith("checkpoints/last/pretrained_model/train_config.json")
    ckpt(10)
    assert train_status(plan, run) == "done"


def _fake_checkpoints(train: Path):
    """What LeRobot leaves on disk for a checkpoint: the folder, then `last` moved to it."""
    def save(step):
        d = train / "checkpoints" / f"{step:06d}"
        (d / "training_state").mkdir(parents=True, exist_ok=True)
        (d / "pretrained_model").mkdir(exist_ok=True)
        (d / "pretrained_model" / "config.json").write_text("{}")
        (d / "training_state" / "training_step.json").write_text(json.dumps({"step": step}))
        last = train / "checkpoints" / "last"
        last.unlink(missing_ok=True)
        last.symlink_to(d.name)
    return save


def _fake_trainer(monkeypatch, save, order, budget=12, save_freq=4, die_at=None):
    """Runner._run without processes: lerobot-train saves every save_freq steps up to its --steps (resuming from
    `last`), eval stages just succeed; the order of everything run goes to ``order``."""
    from lerobot_world.study import matrix

    def fake_run(self, cmd, log_path, env_extra=None):
        if cmd[0] != "lerobot-train":
            order.append(Path(log_path).stem)
            return 0
        flags = dict(a[2:].split("=", 1) for a in cmd[1:])
        end = int(flags.get("steps", budget))
        start = 0
        if flags.get("resume") == "true":
            start = json.loads((Path(flags["config_path"]).parent.parent / "training_state" /
                                "training_step.json").read_text())["step"]
        order.append(f"train{'+resume' if start else ''}->{end}")
        for step in range(start + 1, end + 1):
            if die_at is not None and step == die_at:
                return -9
            if step % save_freq == 0 or step == end:
                save(step)
        return 0

    monkeypatch.setattr(matrix.Runner, "_run", fake_run)


def test_training_stops_at_each_scored_checkpoint_and_resumes_after_its_stages(tmp_path, monkeypatch):
    """Segments: a checkpoint a stage scores is scored as soon as it exists (train to 4, score 4, resume to 8,
    score 8, resume to the budget, final stages); reproduce.sh lists exactly that order."""
    from lerobot_world.study import matrix

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    plan = matrix.make_plan(matrix.load_config(_write(tmp_path / "m.yaml", STAGES_YAML), ["--results_dir=null"]))
    run = plan.runs[0]  # A: eval_offline, eval_sim, eval_offline_step4, eval_sim_step4, eval_sim_step8
    assert plan.segment_ends() == [4, 8, 12]
    first, second, third = [cmd for _, cmd in plan.train_commands(run)]
    assert first[:2] == ["lerobot-train", "--policy.type=world_vla"] and "--steps=4" in first and "--steps=12" not in first
    assert "--resume=true" in second and second[-1] == "--steps=8" and third[-1] == "--steps=12"
    order = []
    _fake_trainer(monkeypatch, _fake_checkpoints(run.dir(plan.root) / "train"), order)
    matrix.Runner(plan).run_one(run)
    assert order == ["train->4", "eval_offline_step4", "eval_sim_step4", "train+resume->8", "eval_sim_step8",
                     "train+resume->12", "eval_offline", "eval_sim"]
    assert all((run.dir(plan.root) / s / matrix.DONE).is_file() for s in order if not s.startswith("train"))
    # reproduce.sh: the same sequence of commands (stage names appear in their --output_dir).
    script = [line for line in matrix.reproduce_text(plan).split("# A_s0", 1)[1].split("# C_s0")[0].splitlines()
              if line.startswith(("lerobot-train", "lerobot-world"))]
    names = ["train" if line.startswith("lerobot-train") else
             line.split("--output_dir=")[1].split()[0].strip("'").rsplit("/", 1)[1] for line in script]
    assert names == ["train", "eval_offline_step4", "eval_sim_step4", "train", "eval_sim_step8", "train",
                     "eval_offline", "eval_sim"]


def test_progress_lines_name_the_stage_running(tmp_path, monkeypatch):
    """The runner's periodic line says what each run is doing: LeRobot's last logged step while it trains,
    the stage and its minutes while it evaluates (never '-' while a stage runs)."""
    from lerobot_world.study import matrix

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    plan = matrix.make_plan(matrix.load_config(_write(tmp_path / "m.yaml", STAGES_YAML), ["--results_dir=null"]))
    run = plan.runs[0]
    save, seen = _fake_checkpoints(run.dir(plan.root) / "train"), []

    def fake_run(self, cmd, log_path, env_extra=None):
        Path(log_path).write_text("step:2K smpl:32K loss:0.5\n")
        seen.append([matrix._progress_text(name, *entry) for name, entry in self.active.items()])
        if cmd[0] == "lerobot-train":
            save(int(dict(a[2:].split("=", 1) for a in cmd[1:])["steps"]))
        return 0

    monkeypatch.setattr(matrix.Runner, "_run", fake_run)
    runner = matrix.Runner(plan)
    runner.run_one(run)
    assert seen[0] == ["A_s0 step 2K"]
    assert ["A_s0 eval_offline_step4 0 min"] in seen and ["A_s0 eval_sim 0 min"] in seen
    assert all(len(s) == 1 for s in seen) and runner.active == {}


def test_resumed_training_scores_its_saved_checkpoints_before_it_continues(tmp_path, monkeypatch):
    """A study spanning work sessions: the earlier checkpoints a killed training saved are evaluated before the
    training resumes (the success-vs-budget curve grows session by session); a half-saved one is left for later;
    a training that dies before its segment end fails the run with the step it needed."""
    from lerobot_world.study import matrix

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    plan = matrix.make_plan(matrix.load_config(_write(tmp_path / "m.yaml", STAGES_YAML), ["--results_dir=null"]))
    run = plan.runs[0]
    train = run.dir(plan.root) / "train"
    save = _fake_checkpoints(train)
    save(4)
    (train / "checkpoints" / "000008" / "pretrained_model").mkdir(parents=True)  # half-saved when killed
    (train / "checkpoints" / "000008" / "pretrained_model" / "config.json").write_text("{}")
    order = []
    _fake_trainer(monkeypatch, save, order, die_at=11)
    with pytest.raises(matrix.MatrixError, match="before step 12"):
        matrix.Runner(plan).run_one(run)
    assert order == ["eval_offline_step4", "eval_sim_step4", "train+resume->8", "eval_sim_step8", "train+resume->12"]
    assert json.loads((run.dir(plan.root) / "state.json").read_text())["status"] == "failed"
    order.clear()
    _fake_trainer(monkeypatch, save, order)
    matrix.Runner(plan).run_one(run)  # the same command again: resumes from 8, never redoes a scored stage
    assert order == ["train+resume->12", "eval_offline", "eval_sim"]


def test_an_interrupted_training_attempt_counts_its_time_up_to_its_last_checkpoint(tmp_path, monkeypatch):
    """A study spanning work sessions: a training whose runner was killed (the session ended) adds, when the same
    command runs again, its time up to its last checkpoint to the stage's seconds and the rest (redone after the
    resume) to lost_seconds, once; an attempt that crashes under a live runner is counted the same way at once."""
    from lerobot_world.study import matrix
    from lerobot_world.study.results import _timing

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    yaml = STAGES_YAML.replace("checkpoints: [4, 8, 12]", "checkpoints: []").replace("checkpoints: [4]", "checkpoints: []")
    plan = matrix.make_plan(matrix.load_config(_write(tmp_path / "m.yaml", yaml), ["--results_dir=null"]))
    run, crashed = plan.runs
    run_dir = run.dir(plan.root)
    save = _fake_checkpoints(run_dir / "train")
    # What a killed runner leaves: the attempt in state.json, checkpoints up to 8, train.log written until the kill.
    started = time.time() - 1000
    matrix.write_state(plan, run, status="training",
                       stage=("train", {"command": "lerobot-train ...", "attempt": {"started": started, "from_step": None}}))
    save(4)
    save(8)
    os.utime(run_dir / "train" / "checkpoints" / "last" / "training_state" / "training_step.json",
             (started + 600, started + 600))
    (run_dir / "train.log").write_text("step:9\n")
    os.utime(run_dir / "train.log", (started + 900, started + 900))
    order = []
    _fake_trainer(monkeypatch, save, order)
    matrix.Runner(plan).run_one(run)
    assert order[0] == "train+resume->12"
    train = json.loads((run_dir / "state.json").read_text())["stages"]["train"]
    assert train["attempt"] is None and train["interrupted_attempts"] == 1
    assert 600 <= train["seconds_total"] < 630 and train["lost_seconds_total"] == 300
    timing = _timing(json.loads((run_dir / "state.json").read_text()))
    assert timing["seconds"]["train"] == train["seconds_total"] and timing["train_lost_seconds"] == 300
    assert timing["total_seconds"] < 700  # the lost time is not in the totals
    matrix.Runner(plan).run_one(run)  # nothing left to count twice
    assert json.loads((run_dir / "state.json").read_text())["stages"]["train"] == train

    # A crash under a live runner (checkpoints 4 and 8 saved, died at 11) is counted when it happens.
    order.clear()
    _fake_trainer(monkeypatch, _fake_checkpoints(crashed.dir(plan.root) / "train"), order, die_at=11)
    with pytest.raises(matrix.MatrixError, match="before step 12"):
        matrix.Runner(plan).run_one(crashed)
    train = json.loads((crashed.dir(plan.root) / "state.json").read_text())["stages"]["train"]
    assert train["attempt"] is None and train["interrupted_attempts"] == 1 and "lost_seconds_total" in train
    assert "interrupted_attempts" not in _timing({"stages": {"train": {"seconds": 5}}})


# ------------------------------------------------------------------------------------------------
# slow: a real matrix, killed in the middle, resumed (issue 6 Must-show 2)
# ------------------------------------------------------------------------------------------------


def _tiny_overrides() -> str:
    items = {f.split("=")[0][2:]: f.split("=", 1)[1] for f in TINY_POLICY_FLAGS}
    items.update({"steps": "6", "save_freq": "2", "log_freq": "2", "batch_size": "4", "num_workers": "0",
                  "dataset.eval_split": str(TOY_EVAL_SPLIT), "tokenize.vocab_size": "8"})
    return "\n".join(f"  {k}: '{v}'" for k, v in items.items())


@pytest.mark.slow
def test_matrix_killed_resumes_without_redoing_finished_runs(toy_dataset_root, tmp_path):
    config = _write(tmp_path / "m.yaml", f"""
name: resume_test
output_dir: {tmp_path / 'out'}
preset: cpu_small
dataset: {{repo_id: {TOY_REPO_ID}, root: {toy_dataset_root}}}
variants: [A, C]
seeds: [0]
progress_every_s: 5
overrides:
{_tiny_overrides()}
""")
    exe = [sys.executable, "-m", "lerobot_world.cli", "matrix", f"--config={config}"]
    out = tmp_path / "out"
    # Kill the whole matrix (runner + trainer) once C has written a checkpoint short of its 6 steps.
    c_last = out / "runs" / "C_s0" / "train" / "checkpoints" / "last" / "training_state" / "training_step.json"
    first_log = kill_job_when(exe, lambda: c_last.is_file() and json.loads(c_last.read_text())["step"] < 6, 900)
    assert c_last.is_file(), f"C never checkpointed before the matrix ended:\n{first_log[-3000:]}"
    killed_at = json.loads(c_last.read_text())["step"]
    assert killed_at < 6, "the matrix finished before it could be killed; the test proved nothing"
    a_model = out / "runs" / "A_s0" / "train" / "checkpoints" / "last" / "pretrained_model" / "model.safetensors"
    a_mtime = a_model.stat().st_mtime

    result = subprocess.run(exe, capture_output=True, text=True, timeout=900)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert "A_s0: train done (step 6), skipped" in log
    assert f"C_s0: resuming from step {killed_at}" in log
    assert "table local-toy_libero__pixel_pca__v8: exists, reused" in log
    assert a_model.stat().st_mtime == a_mtime  # A was not retrained
    c_log = (out / "runs" / "C_s0" / "train.log").read_text()
    assert "--resume=true" in c_log and "Resuming data order" in c_log
    state = json.loads((out / "runs" / "C_s0" / "state.json").read_text())
    assert state["status"] == "done" and state["checkpoint_step"] == 6
    assert (out / "reproduce.sh").is_file()
