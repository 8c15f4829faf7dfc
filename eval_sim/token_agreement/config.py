"""token-agreement's flags, its error type and its constants.
"""

from dataclasses import dataclass, field
from pathlib import Path

from lerobot_world.errors import UserError
from lerobot_world.splits import DatasetArgs

DEFAULT_FIRST_N = 2
TOP_PAIRS = 10


POLICY_NOTE = (
    "world prediction along the demonstrated states (the policy observes every replayed frame while the recorded "
    "actions are executed) separates the world model's accuracy from the policy's own trajectories in eval-sim"
)


class TokenAgreementError(UserError):
    """Bad input; one sentence naming the bad value and what was expected."""


@dataclass
class PolicyArgs:
    # A world_vla checkpoint (variant B, C or C_no_world_input, trained with --world_tokens) that observes
    # the replay and predicts world tokens; None: tokens only.
    path: str | None = None


@dataclass
class TokenAgreementConfig:
    # The demonstrations dataset (recorded by `lerobot-world demos`: results.json in its root).
    dataset: DatasetArgs = field(default_factory=DatasetArgs)
    # World-token table directory of this dataset (`lerobot-world tokenize --output_dir`).
    world_tokens: str | None = None
    # Dataset episode indices to replay, e.g. [0,1]; None: the first `first_n` episodes.
    episodes: list[int] | None = None
    first_n: int = DEFAULT_FIRST_N
    # Where results.json and results.md go; None: outputs/token_agreement/<date>/<time>_<repo>.
    output_dir: Path | None = None
    # Replace an existing non-empty output_dir.
    overwrite: bool = False
    # LeRobot video backend used to decode the dataset frames (None = LeRobot's default, as in tokenize).
    video_backend: str | None = None
    # Optional world_vla policy observing the replay (--policy.path=CHECKPOINT).
    policy: PolicyArgs = field(default_factory=PolicyArgs)
    # Torch device for --policy.path; None: cuda if available, else cpu (as eval-sim).
    device: str | None = None
