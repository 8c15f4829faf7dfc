"""Pre/post-processing for world_vla: LeRobot's standard steps, by their registry names.

Rename -> AddBatchDimension -> Device -> Normalizer on the way in, Unnormalizer -> Device(cpu) on
the way out, so `lerobot-eval --policy.path=... --rename_map=...` and processor overrides work as for
any built-in policy. World tokenization needs no processor step: it runs inside the policy on the
raw [0, 1] camera image (VISUAL normalization is IDENTITY), with the tokenizer saved in the checkpoint.
"""

from typing import Any

import torch
from lerobot.processor import PolicyAction, PolicyProcessorPipeline, make_default_pre_post_processors

from lerobot_world.policy.configuration_world_vla import WorldVLAConfig


def make_world_vla_pre_post_processors(
    config: WorldVLAConfig,
    dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None,
) -> tuple[
    PolicyProcessorPipeline[dict[str, Any], dict[str, Any]],
    PolicyProcessorPipeline[PolicyAction, PolicyAction],
]:
    return make_default_pre_post_processors(config, dataset_stats, normalizer_device=config.device)
