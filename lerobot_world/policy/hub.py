"""Hub publishing for world_vla: a model card that names the variant and world settings, and a local
"hub" so the publish path can run (and be tested) offline.

Publishing itself is LeRobot's: `lerobot-train --policy.push_to_hub=true --policy.repo_id=USER/NAME`
ends with `policy.push_model_to_hub(cfg, ...)` + `preprocessor/postprocessor.push_to_hub(repo_id)`.
This module only changes what the card says (`WorldModelCardMixin`, mixed into WorldVLAPolicy) and
offers `python -m lerobot_world.policy.hub local-train --hub_dir=DIR -- <lerobot-train flags>`, which runs the
real lerobot-train with LeRobot's HfApi replaced by a folder writer (DIR/<repo_id>/), for offline
machines and tests.
"""

import fnmatch
import json
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

VARIANT_TEXT = {
    "A": "plain action behaviour cloning (no world tokens)",
    "B": "auxiliary future world-token loss on an MLP head over the pooled encoder output (a loss only: "
    "nothing it computes reaches the actions)",
    "C": "world tokens as input (current + past context) and K future-world queries in the decoder that the "
    "action queries attend to (the actions are conditioned on the forecast)",
    "C_no_world_input": "C's architecture, future-world queries and attention masks with the world input removed",
}


def world_settings(config) -> dict:
    """The world-token settings that define a run of the study, as plain values."""
    spec = {}
    if getattr(config, "world_tokenizer_spec", None):
        try:
            spec = json.loads(config.world_tokenizer_spec)
        except (TypeError, json.JSONDecodeError):
            spec = {}
    settings = {
        "variant": config.variant,
        "arm": VARIANT_TEXT.get(config.variant, config.variant),
        "uses_world_input": config.uses_world_input,
        "predicts_world": config.predicts_world,
    }
    if config.predicts_world:
        settings.update({
            "world_vocab_size": config.world_vocab_size,
            "future_offset_K": config.future_offset,
            "world_context": config.world_context if config.uses_world_input else None,
            "world_context_stride": config.world_context_stride if config.uses_world_input else None,
            "world_input_dropout": config.world_input_dropout if config.uses_world_input else None,
            "n_decoder_layers": config.n_decoder_layers,
            "lambda_world": config.lambda_world,
            "world_image_key": config.world_image_key,
            "world_encoder": _encoder_name(spec.get("encoder")),
            "world_table_fingerprint": config.world_table_fingerprint,
        })
    return settings


def _encoder_name(enc) -> str | None:
    if isinstance(enc, dict):
        return enc.get("source") or enc.get("name")
    return enc


def world_card_section(config) -> str:
    s = world_settings(config)
    lines = [
        "## world_vla study arm",
        "",
        f"**Variant `{s['variant']}`**: {s['arm']}.",
        "",
        "| setting | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {'' if v is None else f'`{v}`'} |" for k, v in s.items() if k not in ("variant", "arm")]
    lines += [
        "",
        "Load and run it with LeRobot after `pip install lerobot_policy_world_vla` (plugin discovery):",
        "",
        "```bash",
        f"lerobot-eval --policy.path={config.repo_id or '<this repo>'} --env.type=libero --env.task=libero_object",
        "```",
        "",
        "The world tokenizer (encoder + codebook) travels inside the checkpoint: no token table is needed "
        "at inference.",
    ]
    return "\n".join(lines) + "\n"


def generate_world_model_card(policy, dataset_repo_id, model_type, license, tags, cfg=None, dataset_meta=None):
    """LeRobot's card (same template, same validation) + tags and a section for the world settings."""
    from lerobot.policies.pretrained import PreTrainedPolicy

    config = policy.config
    extra_tags = ["world_vla", f"world_vla-variant-{config.variant}", "world-model"]
    card = PreTrainedPolicy.generate_model_card(
        policy, dataset_repo_id, model_type, license, list(tags or []) + extra_tags, cfg=cfg, dataset_meta=dataset_meta
    )
    card.data.world_vla = world_settings(config)
    # Right before LeRobot's citation block (or at the end), so the arm is visible near the top.
    section, text = world_card_section(config), card.text.rstrip()
    at = text.find("\n## Citation")
    card.text = (text[:at] + "\n\n" + section + text[at:]) if at >= 0 else (text + "\n\n" + section)
    return card


class WorldModelCardMixin:
    """Mix into WorldVLAPolicy (before PreTrainedPolicy) so LeRobot's push path writes the world card."""

    def generate_model_card(self, dataset_repo_id, model_type, license, tags, cfg=None, dataset_meta=None):
        return generate_world_model_card(self, dataset_repo_id, model_type, license, tags, cfg, dataset_meta)


# ----------------------------------------------------------------------------------------------------
# A local stand-in for the Hub: same calls LeRobot makes on HfApi, files go to a folder.
# ----------------------------------------------------------------------------------------------------


class LocalHubApi:
    """Implements the HfApi calls of LeRobot's push paths (create_repo, upload_folder) on a folder."""

    def __init__(self, root: Path, token=None, **_):
        self.root = Path(root)

    def create_repo(self, repo_id, private=None, exist_ok=False, repo_type=None, **_):
        path = self.root / repo_id
        if path.exists() and not exist_ok:
            raise FileExistsError(f"local hub repo {path} exists")
        path.mkdir(parents=True, exist_ok=True)
        return SimpleNamespace(repo_id=repo_id, url=str(path))

    def upload_folder(self, repo_id, folder_path, allow_patterns=None, ignore_patterns=None, **_):
        src, dst = Path(folder_path), self.root / repo_id
        dst.mkdir(parents=True, exist_ok=True)
        for file in sorted(p for p in src.rglob("*") if p.is_file()):
            rel = file.relative_to(src).as_posix()
            if allow_patterns and not any(fnmatch.fnmatch(rel, _p) for _p in _as_list(allow_patterns)):
                continue
            if ignore_patterns and any(fnmatch.fnmatch(rel, _p) for _p in _as_list(ignore_patterns)):
                continue
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, dst / rel)
        url = SimpleNamespace(url=str(dst))
        return SimpleNamespace(repo_url=url, commit_url=str(dst), oid="local")


def _as_list(p):
    return [p] if isinstance(p, str) else list(p)


@contextmanager
def offline_card_validation():
    """`ModelCard.validate()` posts the card's YAML to the Hub; offline, check it locally instead
    (the metadata must round-trip through YAML as a mapping, which is what the Hub parses)."""
    import yaml
    from huggingface_hub.repocard import RepoCard

    def validate(self, repo_type=None):
        data = yaml.safe_load(self.data.to_yaml())
        if not isinstance(data, dict):
            raise ValueError(f"model card metadata is not a YAML mapping: {data!r}")

    saved = RepoCard.validate
    RepoCard.validate = validate
    try:
        yield
    finally:
        RepoCard.validate = saved


@contextmanager
def local_hub(root: Path | str):
    """Redirect LeRobot's policy and processor pushes (its two HfApi references) to `root`."""
    import lerobot.policies.pretrained as pretrained
    import lerobot.utils.hub as hub

    def make(*args, **kwargs):
        return LocalHubApi(Path(root), *args, **kwargs)

    saved = pretrained.HfApi, hub.HfApi
    pretrained.HfApi = hub.HfApi = make
    try:
        with offline_card_validation():
            yield Path(root)
    finally:
        pretrained.HfApi, hub.HfApi = saved


def main(argv: list[str] | None = None) -> None:
    """`python -m lerobot_world.policy.hub local-train --hub_dir=DIR -- <lerobot-train flags>`."""
    from lerobot_world.errors import fail

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "local-train" or "--" not in argv:
        fail("usage: python -m lerobot_world.policy.hub local-train --hub_dir=DIR -- <lerobot-train flags>")
    head, rest = argv[1 : argv.index("--")], argv[argv.index("--") + 1 :]
    hub_dirs = [a.split("=", 1)[1] for a in head if a.startswith("--hub_dir=")]
    if not hub_dirs:
        fail("local-train needs --hub_dir=DIR (where pushed repos are written).")
    from lerobot.scripts.lerobot_train import main as train_main

    sys.argv = ["lerobot-train", *rest]
    with local_hub(hub_dirs[0]):
        train_main()


if __name__ == "__main__":
    main()
