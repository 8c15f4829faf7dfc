"""token-agreement's inputs, validated before anything is simulated or written: the demos record, the
dataset, the table and the optional policy.
"""

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from eval_sim.token_agreement.config import TokenAgreementConfig, TokenAgreementError


@dataclass
class Inputs:
    meta: object  # LeRobotDatasetMetadata
    table: object  # WorldTokenTable
    demos: dict  # results.json of `lerobot-world demos`
    episodes: list[dict]  # per chosen dataset episode: episode_index, task_id, init_id, seed, steps, task, from, to
    out: Path
    policy_cfg: object = None  # the --policy.path checkpoint's config (WorldVLAConfig), checked against the table


def check_policy_config(pcfg, table, policy_path: str, world_tokens: str) -> None:
    """The checkpoint must be world_vla, predict world tokens, and have been trained with this very table."""
    ptype = getattr(pcfg, "type", None)
    if ptype != "world_vla":
        raise TokenAgreementError(
            f"--policy.path={policy_path} is a {ptype!r} policy; expected a world_vla checkpoint that predicts world "
            "tokens (variant B, C or C_no_world_input)"
        )
    if not pcfg.predicts_world:
        raise TokenAgreementError(
            f"--policy.path={policy_path} is world_vla variant {pcfg.variant!r}, which does not predict world tokens; "
            "expected variant B, C or C_no_world_input"
        )
    from lerobot_world.tokens.table import SPEC_FILE

    diffs = []
    if pcfg.world_table_fingerprint != table.fingerprint:
        diffs.append(f"dataset fingerprint {str(pcfg.world_table_fingerprint)[:12]} vs {str(table.fingerprint)[:12]}")
    try:
        spec = json.loads(pcfg.world_tokenizer_spec) if pcfg.world_tokenizer_spec else None
    except json.JSONDecodeError:
        spec = None
    table_spec = json.loads((Path(table.path) / SPEC_FILE).read_text())
    if spec != table_spec:
        diffs.append(f"tokenizer spec {pcfg.world_tokenizer_spec} vs {json.dumps(table_spec, sort_keys=True)}")
    if pcfg.world_vocab_size != table.vocab_size:
        diffs.append(f"vocab size {pcfg.world_vocab_size} vs {table.vocab_size}")
    if pcfg.world_image_key != table.meta.get("image_key"):
        diffs.append(f"camera {pcfg.world_image_key!r} vs {table.meta.get('image_key')!r}")
    if diffs:
        raise TokenAgreementError(
            f"--policy.path={policy_path} was trained with another world-token table than --world_tokens={world_tokens} "
            f"({'; '.join(diffs)}); expected a checkpoint trained with --policy.world_tokens={world_tokens}"
        )


def check_tokenizer_state(policy_tokenizer, table_tokenizer, policy_path: str, world_tokens: str) -> None:
    """The checkpoint's world tokenizer (encoder + codebook, saved in its model.safetensors) must equal the table's."""
    import torch

    a, b = policy_tokenizer.state_dict(), table_tokenizer.state_dict()
    diff = sorted(set(a) ^ set(b)) or [
        k for k in a if a[k].shape != b[k].shape or not torch.equal(a[k].detach().cpu(), b[k].detach().cpu())
    ]
    if diff:
        raise TokenAgreementError(
            f"--policy.path={policy_path}: its world tokenizer's weights differ from --world_tokens={world_tokens}'s "
            f"({diff[0]}{f' and {len(diff) - 1} more' if len(diff) > 1 else ''}); expected a checkpoint trained with "
            "this table"
        )


def _validate_policy(cfg: TokenAgreementConfig, table, meta, demos: dict, episodes: list[dict]):
    """The --policy.path checkpoint's config, checked before anything is loaded or simulated."""
    from eval_sim.errors import EvalSimError
    from eval_sim.policies import load_policy_config, policy_image_size

    path = cfg.policy.path
    try:
        pcfg = load_policy_config(path)
    except EvalSimError as e:
        raise TokenAgreementError(str(e).rstrip(".")) from None
    check_policy_config(pcfg, table, path, cfg.world_tokens)
    size = int(demos["config"]["image_size"])
    psize = policy_image_size(pcfg)
    if psize is not None and tuple(psize) != (size, size):
        raise TokenAgreementError(
            f"--policy.path={path} takes {psize[0]}x{psize[1]} images but the demos were recorded at {size}x{size}; "
            "expected a checkpoint trained on this dataset"
        )
    missing = sorted(set(pcfg.image_features) - set(meta.camera_keys))
    if missing:
        raise TokenAgreementError(
            f"--policy.path={path} needs camera(s) {missing} that dataset {cfg.dataset.repo_id} lacks; "
            f"expected a checkpoint trained on this dataset ({list(meta.camera_keys)})"
        )
    unknown = sorted({e["task"] for e in episodes} - set(pcfg.tasks)) if pcfg.tasks else []
    if unknown:
        raise TokenAgreementError(
            f"--policy.path={path} was not trained on task {unknown[0]!r} of the chosen episodes; "
            "expected a checkpoint trained on this dataset"
        )
    return pcfg


def _load_demos_results(root: Path) -> dict:
    path = root / "results.json"
    if not path.is_file():
        raise TokenAgreementError(
            f"--dataset.root={root} has no results.json; expected a dataset recorded by `lerobot-world demos` "
            "(its results.json gives each episode's task, init state and seed)"
        )
    try:
        res = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise TokenAgreementError(f"{path} is not valid JSON ({e}); expected the results.json of `lerobot-world demos`") from None
    cfg = res.get("config") if isinstance(res, dict) else None
    if (not isinstance(cfg, dict) or not isinstance(res.get("episodes"), list) or "dataset" not in res
            or not {"suite", "image_size", "init"} <= set(cfg)):
        raise TokenAgreementError(
            f"{path} is not the results.json of a recorded `lerobot-world demos` dataset (it lacks config/episodes/dataset); "
            "expected a dataset recorded with --record=true"
        )
    return res


def _dataset_episodes(demos: dict, meta, results_path: Path) -> list[dict]:
    """Dataset episode e <-> the e-th successful record of results.json (demos writes only those, in order)."""
    kept = [r for r in demos["episodes"] if r.get("success")]
    n = int(meta.total_episodes)
    if len(kept) != n:
        raise TokenAgreementError(
            f"{results_path} lists {len(kept)} recorded (successful) episodes but the dataset has {n}; "
            "expected the results.json written together with this dataset"
        )
    lengths = [int(x) for x in meta.episodes["length"]]
    starts = [int(x) for x in meta.episodes["dataset_from_index"]]
    tasks = [t[0] if t else "" for t in meta.episodes["tasks"]]
    out = []
    for e, r in enumerate(kept):
        if int(r["steps"]) != lengths[e] or (r.get("task") is not None and r["task"] != tasks[e]):
            raise TokenAgreementError(
                f"{results_path}: episode {e} has {r['steps']} steps / task {r.get('task')!r} there but {lengths[e]} frames / "
                f"task {tasks[e]!r} in the dataset; expected the results.json written together with this dataset"
            )
        out.append({"episode_index": e, "task_id": int(r["task_id"]), "init_id": r.get("init_id"), "seed": int(r["seed"]),
                    "steps": lengths[e], "task": tasks[e], "from": starts[e], "to": starts[e] + lengths[e]})
    return out


def _default_output_dir(repo_id: str) -> Path:
    now = dt.datetime.now()
    return Path("outputs/token_agreement") / f"{now:%Y-%m-%d}" / f"{now:%H-%M-%S}_{repo_id.replace('/', '-')}"


def validate(cfg: TokenAgreementConfig) -> Inputs:
    from lerobot_world.dataset import open_metadata
    from lerobot_world.tokens.table import WorldTokenTable

    if cfg.world_tokens is None:
        raise TokenAgreementError("--world_tokens is required: the world-token table directory of this dataset (`lerobot-world tokenize`)")
    if cfg.dataset.root is None:
        raise TokenAgreementError("--dataset.root is required: the directory of a dataset recorded by `lerobot-world demos`")
    if cfg.first_n < 1:
        raise TokenAgreementError(f"--first_n={cfg.first_n}; expected a positive integer")
    root = Path(cfg.dataset.root).expanduser()
    meta = open_metadata(cfg.dataset.repo_id, root)
    demos = _load_demos_results(root)
    try:
        table = WorldTokenTable.load(cfg.world_tokens)
    except ValueError as e:
        raise TokenAgreementError(f"--world_tokens={cfg.world_tokens}: {e}") from None
    image_key = table.meta.get("image_key")
    if image_key not in meta.camera_keys:
        raise TokenAgreementError(
            f"--world_tokens={cfg.world_tokens} tokenizes camera {image_key!r}, which dataset {cfg.dataset.repo_id} lacks; "
            f"expected one of {list(meta.camera_keys)}"
        )
    try:
        table.check_matches(meta)
    except ValueError as e:
        raise TokenAgreementError(f"--world_tokens: {e}") from None
    all_eps = _dataset_episodes(demos, meta, root / "results.json")
    n = len(all_eps)
    chosen = list(range(min(cfg.first_n, n))) if cfg.episodes is None else [int(e) for e in cfg.episodes]
    bad = [e for e in chosen if not 0 <= e < n]
    if not chosen or bad:
        raise TokenAgreementError(
            f"--episodes={cfg.episodes}: episode {bad[0] if bad else '(none)'} is not in dataset {cfg.dataset.repo_id}; "
            f"expected a non-empty list of indices in 0..{n - 1}"
        )
    if len(set(chosen)) != len(chosen):
        raise TokenAgreementError(f"--episodes={cfg.episodes} repeats an episode; expected distinct indices in 0..{n - 1}")
    out = Path(cfg.output_dir) if cfg.output_dir is not None else _default_output_dir(cfg.dataset.repo_id)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not cfg.overwrite:
        raise TokenAgreementError(f"--output_dir={out} already exists and is not empty; pass a new directory or --overwrite=true")
    episodes = [all_eps[e] for e in chosen]
    pcfg = _validate_policy(cfg, table, meta, demos, episodes) if cfg.policy.path else None
    return Inputs(meta=meta, table=table, demos=demos, episodes=episodes, out=out, policy_cfg=pcfg)
