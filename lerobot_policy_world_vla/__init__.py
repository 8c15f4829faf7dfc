"""Plugin shim found by LeRobot's discovery (distribution name starts with ``lerobot_policy_``).

Importing it registers ``world_vla`` with LeRobot's policy config registry.
"""

import lerobot_world  # noqa: F401  (registration side effect)
from lerobot_world.configuration_world_vla import WorldVLAConfig

__all__ = ["WorldVLAConfig"]
