"""Plugin shim found by LeRobot's discovery (distribution name starts with ``lerobot_policy_``).

Importing it registers ``world_vla`` with LeRobot's policy config registry.
"""

from lerobot_world.policy.configuration_world_vla import WorldVLAConfig  # registration side effect

__all__ = ["WorldVLAConfig"]
