"""The replay: rebuild each demo's env as the recorder did, step the recorded actions, tokenize the live
frames, and let an optional policy observe them (PolicyObserver).
"""

import json
from pathlib import Path

import numpy as np

from eval_sim.token_agreement.compare import compare_episode, world_summary
from eval_sim.token_agreement.config import TokenAgreementConfig, TokenAgreementError
from eval_sim.token_agreement.inputs import Inputs, check_tokenizer_state
from lerobot_world.errors import first_line


def _to_uint8_grid(images) -> np.ndarray:
    """[T, 3, H, W] uint8 or float in [0, 1] -> uint8 (round(x * 255): the tokenizer's own 8-bit snap)."""
    import torch

    from lerobot_world.tokens.tokenizer import to_pixel_grid

    return to_pixel_grid(torch.as_tensor(images)).to(torch.uint8).numpy()


class PolicyObserver:
    """A loaded world_vla policy watching a replay: every live observation goes through the checkpoint's own
    preprocessor and ``select_action`` (as in eval-sim's ``PolicyRunner.act``); its actions are discarded.
    Records the token it observed each step and its predictions (a new one per action chunk)."""

    def __init__(self, loaded):
        self.loaded = loaded
        self.policy = loaded.policy
        if hasattr(self.policy, "world_corruption"):
            self.policy.world_corruption = None
        self.horizon = int(self.policy.config.future_offset)
        self.reset()

    def reset(self) -> None:
        self.policy.reset()
        self.observed: list[int] = []
        self.predicted: dict[int, np.ndarray] = {}
        self._last = None

    def __call__(self, t: int, observation: dict) -> None:
        import torch

        batch = self.loaded.preprocessor({**observation})
        with torch.inference_mode():
            self.policy.select_action(batch)
        self.observed.append(int(self.policy.last_world_observed[0]))
        pr = self.policy.last_world_predicted
        if pr is not None and pr is not self._last:
            self.predicted[t] = pr[0].detach().cpu().numpy().astype(np.int64)
        self._last = pr

    def result(self, live_tokens) -> dict:
        """World accuracy per k + copy baseline on the policy's observed tokens (eval-sim's scoring), the
        predictions themselves ([step, [tokens for step+1..step+K]]), and how often the policy's observed token
        equals the live token of the table's tokenizer."""
        from eval_sim import metrics

        live = np.asarray(live_tokens, dtype=np.int64)
        obs = np.asarray(self.observed, dtype=np.int64)
        if obs.shape != live.shape:
            raise ValueError(f"the policy observed {len(obs)} frames but the replay had {len(live)}")
        c, cc, n = metrics.world_accuracy_counts(obs, self.predicted, self.horizon)
        return world_summary(c, cc, n) | {
            "frames": int(len(obs)),
            "n_predictions": len(self.predicted),
            "observed_equals_live": int((obs == live).sum()),
            "predictions": [[int(t), [int(x) for x in p]] for t, p in sorted(self.predicted.items())],
        }


def replay_episode(recorder, ep: dict, dataset, tokenizer, image_key: str, table_tokens, observer=None) -> dict:
    """Replay one dataset episode's actions in ``recorder``'s env; the per-frame comparison. With ``observer``
    (a :class:`PolicyObserver`), the policy sees every live observation too; its numbers go under "policy"."""
    import torch

    live_imgs, live_states, dec_imgs, rec_states, actions = [], [], [], [], []
    for i in range(ep["from"], ep["to"]):
        item = dataset[i]
        if int(item["index"]) != i or int(item["episode_index"]) != ep["episode_index"]:
            raise TokenAgreementError(f"dataset frame {i} is not frame {i - ep['from']} of episode {ep['episode_index']}")
        dec_imgs.append(item[image_key])
        rec_states.append(item["observation.state"].numpy())
        actions.append(item["action"].numpy().astype(np.float32))
    raw = recorder.reset(ep["init_id"], ep["seed"])
    if observer is not None:
        observer.reset()
    for t, action in enumerate(actions):
        obs = recorder.observation(raw)
        live_imgs.append(obs[image_key][0].detach().cpu().clone())  # float [3, H, W] in [0, 1]: what the policy gets
        live_states.append(obs["observation.state"][0].numpy().copy())
        if observer is not None:
            observer(t, obs)
        if t + 1 < len(actions):
            raw, *_ = recorder.env.step(action)
    live = torch.stack(live_imgs)
    dec = torch.stack(dec_imgs)
    if live.shape != dec.shape:
        raise TokenAgreementError(
            f"live {image_key} frames are {list(live.shape[1:])} but the dataset's are {list(dec.shape[1:])}; "
            "expected the image size recorded in results.json"
        )
    with torch.no_grad():
        live_tok = tokenizer(live).cpu().numpy()
        dec_tok = tokenizer(dec).cpu().numpy()
    r = compare_episode(
        table_tokens, live_tok, dec_tok, np.stack(live_states), np.stack(rec_states), _to_uint8_grid(live), _to_uint8_grid(dec)
    )
    if observer is not None:
        r["policy"] = observer.result(live_tok)
    return r


def training_roles(policy_dir: Path, meta) -> dict[int, str] | None:
    """Dataset episode -> "train" / "held-out" in the checkpoint's training run (its train_config.json, LeRobot's
    eval_split rule); episodes outside the run's ``dataset.episodes`` are "unused". None when unknown."""
    from lerobot_world.splits import split_dataset

    path = Path(policy_dir) / "train_config.json"
    try:
        ds = json.loads(path.read_text()).get("dataset") or {}
        split = split_dataset(meta, float(ds.get("eval_split") or 0.0), ds.get("episodes"))
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    roles = {e: "unused" for e in range(int(meta.total_episodes))}
    return roles | {e: "train" for e in split.train} | {e: "held-out" for e in split.heldout}


def load_observer(cfg: TokenAgreementConfig, inp: Inputs, table_tokenizer) -> PolicyObserver:
    """Load --policy.path exactly as eval-sim does (``eval_sim.policies.load_policy``: make_policy + its saved
    processors) for a LiberoEnv at the demos' suite and image size; check its tokenizer weights against the table."""
    from lerobot.envs.configs import LiberoEnv as LiberoEnvConfig

    from eval_sim.errors import EvalSimError
    from eval_sim.policies import load_policy

    dcfg = inp.demos["config"]
    size = int(dcfg["image_size"])
    env_cfg = LiberoEnvConfig(task=dcfg["suite"], task_ids=sorted({e["task_id"] for e in inp.episodes}),
                              observation_height=size, observation_width=size)
    try:
        loaded = load_policy(cfg.policy.path, env_cfg, device=cfg.device)
    except EvalSimError as e:
        raise TokenAgreementError(str(e).rstrip(".")) from None
    except Exception as e:  # noqa: BLE001 - one sentence for the user
        first = first_line(e)
        raise TokenAgreementError(f"--policy.path={cfg.policy.path} could not be loaded as a policy ({first})") from None
    tok = getattr(loaded.policy, "world_tokenizer", None)
    if tok is None:
        raise TokenAgreementError(f"--policy.path={cfg.policy.path} has no world tokenizer; expected variant B, C or C_no_world_input")
    check_tokenizer_state(tok, table_tokenizer, cfg.policy.path, cfg.world_tokens)
    return PolicyObserver(loaded)
