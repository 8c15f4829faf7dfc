"""The one exception type of eval-sim's modules.

Kept apart so the policy, env and rollout modules can raise it without importing each other; the
CLI turns it into `error: <message>`.
"""

from lerobot_world.errors import UserError


class EvalSimError(UserError):
    """Bad input to eval_sim; the message is one sentence naming the bad value and what was expected."""
