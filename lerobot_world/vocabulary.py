"""The study's names, defined once: the arms (variants), the world-input corruptions, the LIBERO camera keys.

Plain constants without imports, so every layer (policy, tokens, evaluators, study tools, eval_sim) reads
the same spelling and a new arm or corruption is added in one place.
"""

# The four arms of the study (DESIGN §1), in report order.
VARIANTS = ("A", "B", "C", "C_no_world_input")
# Arms that predict future world tokens (B as an auxiliary loss, C and C_no_world_input through decoder queries).
WORLD_VARIANTS = ("B", "C", "C_no_world_input")
# Replacements of C's world input that test whether the actions use it (DESIGN §5).
CORRUPTIONS = ("random", "shuffle", "mask")

# LeRobot's LIBERO observation keys: the agent-view and the wrist camera.
AGENT_KEY = "observation.images.image"
WRIST_KEY = "observation.images.image2"

# How every table (results.md, REPORT.md) writes a value that does not exist: no result, no interval, not this arm.
MISSING = "—"
