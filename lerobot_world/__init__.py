"""lerobot-world: the world_vla policy and the experiment kit around it.

Light at import (the `lerobot-world` CLI starts in well under a second): nothing here imports torch or
LeRobot. The `world_vla` config type registers itself with LeRobot when
`lerobot_world.policy.configuration_world_vla` is imported: by LeRobot's plugin discovery (the
`lerobot_policy_world_vla` shim), by `lerobot_world.policy.modeling_world_vla`, by the commands that load
checkpoints, or by touching `lerobot_world.WorldVLAConfig`.
"""

__all__ = ["WorldVLAConfig"]


def __getattr__(name: str):
    # PEP 562 lazy attribute: the config (and its registration) only when asked for.
    if name == "WorldVLAConfig":
        from lerobot_world.policy.configuration_world_vla import WorldVLAConfig

        return WorldVLAConfig
    raise AttributeError(f"module 'lerobot_world' has no attribute {name!r}")
