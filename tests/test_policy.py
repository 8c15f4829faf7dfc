"""world_vla as a LeRobot policy: training through lerobot-train, loading through LeRobot alone,
save/load exactness, parameter accounting per variant, and one clear error per bad input."""

import json
import math
import os
import re
import subprocess
import sys
from copy import deepcopy
from pathlib import Path

import pytest
import torch
from conftest import TEST_DEVICE, TINY_POLICY_FLAGS, TOY_REPO_ID, VARIANTS
from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata
from lerobot.policies.factory import get_policy_class, make_policy, make_policy_config

import lerobot_world.policy.configuration_world_vla  # noqa: F401  (registers world_vla, as LeRobot's plugin discovery does)

TINY_KWARGS = {
    flag.split("=")[0].removeprefix("--policy."): flag.split("=")[1]
    for flag in TINY_POLICY_FLAGS
    if flag.split("=")[0] not in ("--policy.device", "--policy.push_to_hub")
}
TINY_KWARGS = {k: int(v) for k, v in TINY_KWARGS.items()}


def toy_policy(variant, meta, table=None, **overrides):
    kwargs = dict(TINY_KWARGS, variant=variant, device=TEST_DEVICE, push_to_hub=False)
    if variant != "A":
        kwargs["world_tokens"] = str(table)
    kwargs.update(overrides)
    cfg = make_policy_config("world_vla", **kwargs)
    return make_policy(cfg, ds_meta=meta)


def toy_batch(dataset, indices=(0, 5, 40, 100)):
    """A training batch as lerobot-train builds it (action chunks with padding flags)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset(
        TOY_REPO_ID,
        root=dataset.root,
        delta_timestamps={"action": [i / dataset.fps for i in range(TINY_KWARGS["chunk_size"])]},
    )
    batch = torch.utils.data.default_collate([ds[i] for i in indices])
    return {k: v.to(TEST_DEVICE) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


@pytest.fixture(scope="module")
def meta(toy_dataset_root):
    return LeRobotDatasetMetadata(TOY_REPO_ID, root=toy_dataset_root)


# --- training through lerobot-train ---------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
def test_lerobot_train_logs_finite_losses_and_world_metrics(trained_checkpoints, variant):
    ckpt, log = trained_checkpoints[variant]
    assert (ckpt / "model.safetensors").is_file()
    step_lines = [line for line in log.splitlines() if re.search(r"step:\d+ ", line)]
    assert len(step_lines) >= 4, log[-2000:]
    last = step_lines[-1]
    losses = {k: float(v) for k, v in re.findall(r"(\w+):(-?[\d.]+(?:e-?\d+)?)\b", last)}
    assert math.isfinite(losses["loss"]) and math.isfinite(losses["l1_loss"])
    world_keys = {"world_ce", "world_top1", "world_top5", "world_top1_k1", "world_top5_k3"}
    if variant == "A":
        assert not world_keys & set(losses), last
    else:
        assert world_keys <= set(losses), last
        assert math.isfinite(losses["world_ce"])
    assert json.loads((ckpt / "config.json").read_text())["variant"] == variant


# --- loading through LeRobot alone, in a fresh process -------------------------------------------------
FRESH_PROCESS_SCRIPT = r"""
import json, sys, torch
from lerobot.utils.import_utils import register_third_party_plugins
register_third_party_plugins()   # what lerobot-train / lerobot-eval do; no lerobot_world import here
assert "lerobot_world" in sys.modules, "plugin discovery did not import the plugin"
from lerobot.configs.policies import PreTrainedConfig
from lerobot.envs.configs import LiberoEnv
from lerobot.policies.factory import make_policy, make_pre_post_processors
path = sys.argv[1]
cfg = PreTrainedConfig.from_pretrained(path)
cfg.pretrained_path = path
policy = make_policy(cfg, env_cfg=LiberoEnv(task="libero_object"))
pre, post = make_pre_post_processors(cfg, pretrained_path=path)
B, size = 3, cfg.image_features["observation.images.image"].shape[-1]
torch.manual_seed(0)
obs = {
    "observation.images.image": torch.rand(B, 3, size, size),
    "observation.images.image2": torch.rand(B, 3, size, size),
    "observation.state": torch.randn(B, 8),
    "task": [cfg.tasks[0]] * B,
}
policy.reset()
actions = []
for _ in range(3):
    actions.append(post(policy.select_action(pre(dict(obs)))))
print(json.dumps({"cls": type(policy).__name__, "module": type(policy).__module__, "shape": list(actions[-1].shape),
                  "finite": bool(torch.isfinite(torch.stack(actions)).all())}))
"""


@pytest.mark.parametrize("variant", VARIANTS)
def test_checkpoint_loads_in_fresh_process_through_lerobot(trained_checkpoints, variant, tmp_path):
    ckpt, _ = trained_checkpoints[variant]
    out = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS_SCRIPT, str(ckpt)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"cls": "WorldVLAPolicy", "module": NEW_MODELING, "shape": [3, 7], "finite": True}


# The last commit with the flat lerobot_world/ layout (modeling_world_vla.py at the package top). Checkpoints
# store the registered type name and the processor registry names, never module paths, so they must outlive
# a move of the modules.
PRE_LAYOUT_COMMIT = "89d9a2d3d9621835cead6460df4391d07d5f8026"
NEW_MODELING = "lerobot_world.policy.modeling_world_vla"


@pytest.mark.slow  # trains with the old code in a subprocess (~2 min)
def test_checkpoint_saved_by_the_code_before_the_layout_move_loads_and_acts(toy_dataset_root, toy_world_table, tmp_path):
    """Train C with the pre-move code (git archive of PRE_LAYOUT_COMMIT on PYTHONPATH, so lerobot-train's plugin
    discovery imports it), then load and act with today's code in a fresh process through LeRobot alone."""
    from conftest import train_toy_variant

    repo = Path(__file__).resolve().parents[1]
    has_commit = subprocess.run(["git", "-C", str(repo), "cat-file", "-e", f"{PRE_LAYOUT_COMMIT}^{{commit}}"],
                                capture_output=True, timeout=60).returncode == 0
    if not has_commit:
        pytest.skip(f"commit {PRE_LAYOUT_COMMIT[:8]} is not in this checkout (no git history, or a shallow clone)")
    old = tmp_path / "old_code"
    old.mkdir()
    archive = subprocess.run(["git", "-C", str(repo), "archive", PRE_LAYOUT_COMMIT, "lerobot_world",
                              "lerobot_policy_world_vla"], capture_output=True, timeout=60)
    assert archive.returncode == 0, archive.stderr.decode()[-2000:]
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True, timeout=60)
    env = {**os.environ, "PYTHONPATH": str(old)}
    probe = subprocess.run([sys.executable, "-c", "import lerobot_world.modeling_world_vla as m; print(m.__file__)"],
                           capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert probe.returncode == 0 and probe.stdout.strip().startswith(str(old)), probe.stderr[-2000:]

    run = tmp_path / "old_run"
    result = train_toy_variant("C", toy_dataset_root, toy_world_table, run, steps=2, env=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    ckpt = run / "checkpoints" / "last" / "pretrained_model"

    out = subprocess.run([sys.executable, "-c", FRESH_PROCESS_SCRIPT, str(ckpt)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == {"cls": "WorldVLAPolicy", "module": NEW_MODELING, "shape": [3, 7], "finite": True}


def test_policy_class_resolution():
    from lerobot_world.policy.configuration_world_vla import WorldVLAConfig
    from lerobot_world.policy.modeling_world_vla import WorldVLAPolicy

    assert get_policy_class("world_vla") is WorldVLAPolicy
    assert isinstance(make_policy_config("world_vla"), WorldVLAConfig)
    assert WorldVLAPolicy.name == "world_vla"


def test_default_instantiation(meta):
    """LeRobot's generic check: the default config builds a policy from dataset features alone."""
    cfg = make_policy_config("world_vla", device=TEST_DEVICE)
    policy = make_policy(cfg, ds_meta=meta)
    assert policy.config.variant == "A"
    assert sorted(policy.config.tasks) == sorted(meta.tasks.index)


@pytest.mark.parametrize("variant", VARIANTS)
def test_save_load_round_trip_is_bit_exact(meta, toy_world_table, toy_dataset, variant, tmp_path):
    torch.manual_seed(0)
    policy = toy_policy(variant, meta, toy_world_table)
    policy.save_pretrained(tmp_path / "saved")
    cls = get_policy_class("world_vla")
    loaded = cls.from_pretrained(tmp_path / "saved")
    sd, sd2 = policy.state_dict(), loaded.state_dict()
    assert sd.keys() == sd2.keys()
    for key in sd:
        assert torch.equal(sd[key], sd2[key]), key
    if variant != "A":
        assert any(k.startswith("world_tokenizer.") for k in sd), "the tokenizer must travel in the checkpoint"
    batch = toy_batch(toy_dataset)
    obs = {k: v for k, v in batch.items() if k.startswith("observation.") or k == "task"}
    policy.reset(), loaded.reset()
    assert torch.equal(policy.predict_action_chunk(obs), loaded.predict_action_chunk(obs))


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_and_select_action_do_not_mutate_the_batch(meta, toy_world_table, toy_dataset, variant):
    policy = toy_policy(variant, meta, toy_world_table)
    batch = toy_batch(toy_dataset)
    before = deepcopy(batch)
    loss, info = policy.forward(batch)
    assert torch.isfinite(loss) and all(isinstance(v, float) for v in info.values())
    for key in before:
        if isinstance(before[key], torch.Tensor):
            assert torch.equal(before[key], batch[key]), key
        else:
            assert before[key] == batch[key], key
    obs = {k: v for k, v in batch.items() if k.startswith("observation.") or k == "task"}
    obs_before = deepcopy(obs)
    policy.reset()
    action = policy.select_action(obs)
    assert action.shape == (4, 7)
    assert all(torch.equal(obs[k], obs_before[k]) for k in obs if isinstance(obs[k], torch.Tensor))


# --- parameter accounting --------------------------------------------------------------------------------
def _params(policy) -> dict[str, tuple]:
    return {n: tuple(p.shape) for n, p in policy.named_parameters() if p.requires_grad}


def test_parameter_accounting(meta, toy_world_table):
    p = {v: _params(toy_policy(v, meta, toy_world_table)) for v in VARIANTS}
    assert not [n for n in p["A"] if "world" in n], "A must have no world parameters"

    def added(big, small):
        assert all(p[big][n] == p[small][n] for n in p[small]), "shared parameters must keep their shapes"
        assert set(p[small]) <= set(p[big])
        return {n.split(".")[1] for n in set(p[big]) - set(p[small])}

    assert added("B", "A") == {"world_aux_head"}
    assert added("C_no_world_input", "A") == {"world_query_pos_embed", "world_head"}
    assert added("C", "C_no_world_input") == {"world_token_embed", "world_context_pos_embed"}
    v, k, d = 8, TINY_KWARGS["future_offset"], TINY_KWARGS["dim_model"]
    assert p["C_no_world_input"]["model.world_head.weight"] == (v, d)
    assert p["C_no_world_input"]["model.world_query_pos_embed.weight"] == (k, d)
    assert p["C"]["model.world_token_embed.weight"] == (v + 1, d)  # + the mask id
    assert p["B"]["model.world_aux_head.2.weight"] == (k * v, TINY_KWARGS["world_aux_hidden_dim"])


# --- bad input: one clear error each ---------------------------------------------------------------------
def test_unknown_variant_is_one_clear_error():
    from lerobot_world.policy.configuration_world_vla import WorldVLAConfigError

    with pytest.raises(WorldVLAConfigError, match=r"Unknown world_vla variant 'D'.*'A', 'B', 'C', 'C_no_world_input'"):
        make_policy_config("world_vla", variant="D")


def test_unknown_variant_on_the_command_line(tmp_path):
    exe = f"{sys.executable[: -len('python')]}lerobot-train"
    out = subprocess.run(
        [exe, "--policy.type=world_vla", "--policy.variant=D", f"--dataset.repo_id={TOY_REPO_ID}",
         f"--output_dir={tmp_path / 'x'}"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode != 0
    assert "Unknown world_vla variant 'D'" in out.stdout + out.stderr
    assert not (tmp_path / "x").exists()


def test_vocab_size_disagreeing_with_table(meta, toy_world_table):
    with pytest.raises(ValueError, match=r"world_vocab_size=16 disagrees with the token table .*vocab size 8"):
        toy_policy("C", meta, toy_world_table, world_vocab_size=16)


def test_world_variant_without_table(meta):
    with pytest.raises(ValueError, match=r"variant 'C' predicts world tokens.*--policy.world_tokens"):
        toy_policy("C", meta, None, world_tokens=None)


def test_table_of_another_dataset_is_rejected(toy_world_table, tmp_path):
    from lerobot_world.toy_dataset import make_toy_dataset

    other = make_toy_dataset(tmp_path / "other", repo_id=TOY_REPO_ID, episodes_per_task=3, seed=1)
    with pytest.raises(ValueError, match=r"(frames|fingerprint)"):
        toy_policy("C", other.meta, toy_world_table)


def test_missing_camera_key(meta, toy_world_table):
    with pytest.raises(ValueError, match=r"world_image_key 'observation.images.wrist' is not one of the policy's cameras"):
        toy_policy("C", meta, toy_world_table, world_image_key="observation.images.wrist")


def test_unknown_task_at_inference(meta, toy_world_table, toy_dataset):
    policy = toy_policy("C", meta, toy_world_table)
    batch = toy_batch(toy_dataset)
    obs = {k: v for k, v in batch.items() if k.startswith("observation.")}
    obs["task"] = ["open the top drawer"] * 4
    with pytest.raises(ValueError, match=r"task 'open the top drawer' is not one the policy was trained on"):
        policy.select_action(obs)


# --- world tokens: gathering and inference history -----------------------------------------------------
def test_world_targets_are_masked_past_episode_end(meta, toy_world_table):
    from lerobot_world.tokens.table import WorldTokenTable

    policy = toy_policy("C", meta, toy_world_table)
    table = WorldTokenTable.load(toy_world_table)
    ep = table.episode_index
    last = int((ep == 0).nonzero().max())  # last frame of episode 0
    batch = {"index": torch.tensor([0, last]), "episode_index": torch.tensor([0, 0]), "action": torch.zeros(2, 10, 7)}
    context, targets, valid = policy._gather_world(batch)
    assert valid[0].all() and not valid[1].any()
    assert torch.equal(targets[0], table.tokens[1:4])
    # Context before the episode start repeats the first token (what reset() does online).
    assert torch.equal(context[0], table.tokens[[0, 0]])
    assert torch.equal(context[1], table.tokens[[last - 1, last]])


def test_online_history_matches_table_context(meta, toy_world_table, toy_dataset):
    """Feeding an episode's frames one by one gives the same context the table gives in training."""
    policy = toy_policy("C", meta, toy_world_table)
    policy.reset()
    for i in range(6):
        frame = toy_dataset[i]
        obs = {k: frame[k][None] for k in policy.config.image_features}
        online = policy._observe_world(obs)
        offline = policy._gather_world({"index": torch.tensor([i]), "action": torch.zeros(1, 10, 7)})[0]
        assert torch.equal(online, offline), i


@pytest.mark.parametrize("stride", [1, 3])
def test_strided_online_history_matches_table_context(meta, toy_world_table, toy_dataset, stride):
    """With world_context_stride=s the context is w_t, w_{t-s}, ...: the same online and from the table."""
    policy = toy_policy("C", meta, toy_world_table, world_context=3, world_context_stride=stride)
    policy.reset()
    for i in range(10):
        frame = toy_dataset[i]
        obs = {k: frame[k][None] for k in policy.config.image_features}
        online = policy._observe_world(obs)
        offline = policy.gather_world({"index": torch.tensor([i]), "action": torch.zeros(1, 10, 7)})[0]
        assert torch.equal(online, offline), i
    table = policy.token_table.tokens
    assert torch.equal(offline[0], table[[9 - 2 * stride, 9 - stride, 9]])


# --- who reads what: the forecast, the aux head, the latent ---------------------------------------------
def _eval_forward(policy, batch):
    """(actions, world logits) of one deterministic forward on a dataset batch (table world input)."""
    policy.eval()
    with torch.no_grad():
        context = policy.gather_world(batch)[0] if policy.config.uses_world_input else None
        actions, logits, _ = policy.model(batch, policy._images(batch), policy._task_ids(batch), context)
    return actions, logits


def test_one_backbone_call_over_all_cameras_equals_a_call_per_camera(meta, toy_world_table, toy_dataset):
    """The batched, channels_last camera path gives LeRobot's per-camera features, camera by camera."""
    torch.manual_seed(0)
    policy = toy_policy("C", meta, toy_world_table)
    policy.eval()
    model, batch = policy.model, toy_batch(toy_dataset)
    images = policy._images(batch)
    assert len(images) == 2 and not torch.equal(images[0], images[1])
    with torch.no_grad():
        one_call = model._camera_features(images)
        per_camera = [model.act.backbone((img - model.image_mean) / model.image_std)["feature_map"] for img in images]
        assert len(one_call) == len(per_camera) == 2
        for batched, alone in zip(one_call, per_camera, strict=True):
            torch.testing.assert_close(batched, alone, rtol=1e-4, atol=1e-5)
        assert not torch.allclose(one_call[0], one_call[1]), "each chunk must be its own camera's features"
        # Cameras of different sizes cannot share a call: each gets its own, with the same features.
        large = torch.nn.functional.interpolate(images[1], scale_factor=4)
        mixed = model._camera_features([images[0], large])
        torch.testing.assert_close(mixed[0], per_camera[0], rtol=1e-4, atol=1e-5)
        assert mixed[1].shape[-1] > mixed[0].shape[-1]


@pytest.mark.parametrize("variant", ["C", "C_no_world_input"])
def test_actions_read_the_world_queries(meta, toy_world_table, toy_dataset, variant):
    torch.manual_seed(0)
    policy = toy_policy(variant, meta, toy_world_table)
    batch = toy_batch(toy_dataset)
    actions, logits = _eval_forward(policy, batch)
    with torch.no_grad():
        policy.model.world_query_pos_embed.weight.add_(torch.randn_like(policy.model.world_query_pos_embed.weight))
    actions2, logits2 = _eval_forward(policy, batch)
    assert not torch.equal(logits, logits2)
    assert (actions - actions2).abs().max() > 1e-4, "the actions must be conditioned on the world queries"


@pytest.mark.parametrize("variant", ["C", "C_no_world_input"])
def test_world_queries_do_not_read_the_action_queries(meta, toy_world_table, toy_dataset, variant):
    torch.manual_seed(0)
    policy = toy_policy(variant, meta, toy_world_table)
    batch = toy_batch(toy_dataset)
    actions, logits = _eval_forward(policy, batch)
    with torch.no_grad():
        policy.model.act.decoder_pos_embed.weight.add_(torch.randn_like(policy.model.act.decoder_pos_embed.weight))
    actions2, logits2 = _eval_forward(policy, batch)
    assert not torch.equal(actions, actions2)
    torch.testing.assert_close(logits2, logits, rtol=0, atol=1e-6)


def test_aux_head_never_reaches_the_actions(meta, toy_world_table, toy_dataset):
    torch.manual_seed(0)
    policy = toy_policy("B", meta, toy_world_table)
    batch = toy_batch(toy_dataset)
    actions, logits = _eval_forward(policy, batch)
    with torch.no_grad():
        for p in policy.model.world_aux_head.parameters():
            p.add_(torch.randn_like(p))
    actions2, logits2 = _eval_forward(policy, batch)
    assert not torch.equal(logits, logits2)
    assert torch.equal(actions, actions2)


@pytest.mark.parametrize("variant", ["B", "C", "C_no_world_input"])
def test_world_logits_do_not_depend_on_the_vae_latent(meta, toy_world_table, toy_dataset, variant):
    """In training the latent encodes the future actions; two latent samples must give the same world logits."""
    policy = toy_policy(variant, meta, toy_world_table, dropout=0.0)
    batch = toy_batch(toy_dataset)
    context = policy.gather_world(batch)[0] if policy.config.uses_world_input else None
    policy.model.train()
    outs = []
    for seed in (1, 2):
        torch.manual_seed(seed)  # a different latent sample (mu + sigma * eps) each time
        with torch.no_grad():
            outs.append(policy.model(batch, policy._images(batch), policy._task_ids(batch), context))
    (a1, w1, (mu, _)), (a2, w2, _) = outs
    assert mu is not None and not torch.equal(a1, a2), "the latent must reach the actions"
    torch.testing.assert_close(w2, w1, rtol=0, atol=1e-6)


def test_world_variants_need_two_decoder_layers():
    from lerobot_world.policy.configuration_world_vla import WorldVLAConfigError

    for variant in ("C", "C_no_world_input"):
        with pytest.raises(WorldVLAConfigError, match=r"needs n_decoder_layers >= 2 \(got 1\)"):
            make_policy_config("world_vla", variant=variant, n_decoder_layers=1)
    assert make_policy_config("world_vla").n_decoder_layers == 2


# --- corruption: real but wrong world input at any batch size ------------------------------------------
def test_corruptions_use_real_training_tokens_at_batch_size_one(meta, toy_world_table, toy_dataset):
    policy = toy_policy("C", meta, toy_world_table)
    table = policy.token_table
    train = torch.isin(table.episode_index, torch.tensor(table.train_episodes))
    train_frames = train.nonzero().flatten()
    train_windows = {tuple(w.tolist()) for w in table.tokens[policy._context_indices(train_frames)]}
    bank = policy.model.corruption_windows
    assert {tuple(w.tolist()) for w in bank} <= train_windows
    freq = torch.bincount(table.tokens[train_frames], minlength=table.vocab_size).double()
    torch.testing.assert_close(policy.model.corruption_token_freq, freq / freq.sum())

    heldout = int(next(i for i, e in enumerate(table.episode_index.tolist()) if e in table.heldout_episodes))
    clean = policy.gather_world({"index": torch.tensor([heldout]), "action": torch.zeros(1, 10, 7)})[0]
    seen = {"shuffle": set(), "random": set()}
    policy.reseed_world_corruption(0)
    for mode in seen:
        policy.world_corruption = mode
        for _ in range(20):
            drawn = policy._corrupt(clean)
            assert drawn.shape == clean.shape and int(drawn.max()) < table.vocab_size
            seen[mode].add(tuple(drawn[0].tolist()))
    assert seen["shuffle"] <= train_windows and len(seen["shuffle"]) > 1
    assert len(seen["random"]) > 1
    policy.world_corruption = "mask"
    assert torch.equal(policy._corrupt(clean), torch.full_like(clean, table.vocab_size))
    # The bank travels in the checkpoint: a saved-and-loaded policy (no table) corrupts identically.
    policy.world_corruption = None


def test_corruption_bank_travels_in_the_checkpoint(meta, toy_world_table, tmp_path):
    policy = toy_policy("C", meta, toy_world_table)
    policy.save_pretrained(tmp_path / "saved")
    loaded = get_policy_class("world_vla").from_pretrained(tmp_path / "saved")
    assert loaded.token_table is None
    clean = torch.zeros(3, policy.config.world_context, dtype=torch.long)
    for mode in ("shuffle", "random"):
        policy.world_corruption = loaded.world_corruption = mode
        policy.reseed_world_corruption(7), loaded.reseed_world_corruption(7)
        assert torch.equal(policy._corrupt(clean), loaded._corrupt(clean))


def test_world_input_dropout_masks_whole_samples_in_training_only(meta, toy_world_table):
    policy = toy_policy("C", meta, toy_world_table, world_input_dropout=0.5)
    context = torch.arange(64 * 2).view(64, 2) % 8
    mask_id = policy.config.world_vocab_size
    policy.train()
    torch.manual_seed(0)
    out = policy._world_input_dropout(context)
    dropped = (out == mask_id).all(1)
    assert 10 < int(dropped.sum()) < 54
    assert torch.equal(out[~dropped], context[~dropped]) and not (out[~dropped] == mask_id).any()
    policy.eval()
    assert torch.equal(policy._world_input_dropout(context), context)


def test_select_action_exposes_the_forecast_for_the_evaluators(meta, toy_world_table, toy_dataset):
    policy = toy_policy("C", meta, toy_world_table)
    batch = toy_batch(toy_dataset)
    obs = {k: v for k, v in batch.items() if k.startswith("observation.") or k == "task"}
    policy.reset()
    policy.select_action(obs)
    k = policy.config.future_offset
    assert policy.last_world_observed.shape == (4,)
    assert policy.last_world_predicted.shape == (4, k)
    assert policy.last_world_predicted_top5.shape == (4, k, 5)
    assert torch.equal(policy.last_world_predicted_top5[..., 0], policy.last_world_predicted)


# --- bf16 mixed precision (LeRobot's --policy.use_amp path) ---------------------------------------------
# A and C (no world input / world input) in the default suite; B and C_no_world_input, which share C's world
# head code, in the slow one (bf16 is ~3x slower than fp32 on CPUs without AVX-512 BF16, which kept `make test`
# over 15 minutes there).
@pytest.mark.parametrize("variant", [v if v in ("A", "C") else pytest.param(v, marks=pytest.mark.slow) for v in VARIANTS])
def test_bf16_training_through_lerobot_train(toy_dataset_root, toy_world_table, tmp_path, variant):
    from conftest import train_toy_variant

    out = tmp_path / variant
    result = train_toy_variant(variant, toy_dataset_root, toy_world_table, out, steps=6, extra=["--policy.use_amp=true"])
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    losses = [float(m) for m in re.findall(r"loss:([-\d.e+naif]+)", log)]
    assert losses and all(math.isfinite(x) for x in losses), log[-2000:]
    cfg = json.loads((out / "checkpoints" / "last" / "pretrained_model" / "config.json").read_text())
    assert cfg["use_amp"] is True


def test_evaluators_autocast_keeps_the_world_tokens(meta, toy_world_table, toy_dataset):
    """Under the evaluators' autocast (use_amp) the trunk runs in bf16 while the live tokens stay the table's,
    and the actions come back float32: LeRobot's postprocessors follow the action's dtype and lerobot-eval
    hands the env `action.numpy()`, which has no bf16 (a bf16 action crashed stock lerobot-eval)."""
    from lerobot_world.policy.precision import policy_autocast

    policy = toy_policy("C", meta, toy_world_table, use_amp=True)
    batch = toy_batch(toy_dataset)
    obs = {k: v for k, v in batch.items() if k.startswith("observation.") or k == "task"}
    policy.reset()
    with torch.no_grad(), policy_autocast(policy.config, TEST_DEVICE):
        chunk = policy.predict_action_chunk(obs)
        policy.reset()
        action = policy.select_action(obs)
    assert chunk.dtype == torch.float32 and action.dtype == torch.float32
    assert torch.equal(policy.last_world_observed, policy.token_table.tokens[batch["index"]])
    policy.config.use_amp = False
    policy.reset()
    with policy_autocast(policy.config, TEST_DEVICE):
        fp32_chunk = policy.predict_action_chunk(obs)
    assert fp32_chunk.dtype == torch.float32
    assert not torch.equal(chunk, fp32_chunk), "the use_amp chunk equals the fp32 one: the trunk did not run in bf16"


@pytest.mark.parametrize("has_bf16_kernels", [True, False])
def test_bf16_on_a_cpu_without_bf16_kernels_is_one_warning(meta, monkeypatch, caplog, has_bf16_kernels):
    """use_amp on an AVX2-only CPU runs ~3x slower than fp32: the policy says so when it is built."""
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: has_bf16_kernels)
    with caplog.at_level("WARNING"):
        toy_policy("A", meta, use_amp=True, device="cpu")
        toy_policy("A", meta, use_amp=False, device="cpu")
    warnings = [r.getMessage() for r in caplog.records if "without bf16 kernels" in r.getMessage()]
    assert len(warnings) == (0 if has_bf16_kernels else 1), warnings
