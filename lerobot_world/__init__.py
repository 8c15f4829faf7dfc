"""lerobot-world: the world_vla policy and the experiment kit around it.

Kept light at import: only the config registration happens here; torch models, the
tokenizer and anything touching LIBERO/mujoco are imported by the modules that need them.
"""

from lerobot_world.configuration_world_vla import WorldVLAConfig  # registers "world_vla"

__all__ = ["WorldVLAConfig"]
