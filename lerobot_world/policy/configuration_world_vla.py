"""WorldVLAConfig: one ACT-style trunk, four study variants selected by `variant`.

| variant            | world tokens as input | future world-token loss | where the prediction sits            |
|--------------------|-----------------------|-------------------------|--------------------------------------|
| A                  | no                    | no                      | - (plain action behaviour cloning)   |
| B                  | no                    | yes                     | auxiliary MLP head on pooled encoder |
| C                  | yes (context tokens)  | yes                     | K world queries the actions read     |
| C_no_world_input   | no                    | yes                     | exactly C's queries, no world input  |

The trunk fields mirror LeRobot's ACTConfig one-to-one (they are passed to LeRobot's ACT modules).
Every arm has the same trunk; `n_decoder_layers` defaults to 2 because LeRobot's decoder starts from
all-zero queries, so in its first layer self-attention carries no information between queries: the
action queries can read the K world queries (C, C_no_world_input) only from the second layer on.
"""

from dataclasses import dataclass, field

from lerobot.configs import NormalizationMode, PreTrainedConfig
from lerobot.optim import AdamWConfig

from lerobot_world.errors import UserError
from lerobot_world.vocabulary import VARIANTS


class WorldVLAConfigError(UserError):
    """A bad world_vla setting. Not a ValueError (see lerobot_world.errors): draccus replaces the message of a
    ValueError raised while parsing `--policy.*` flags with a generic one, but shows this one."""


@PreTrainedConfig.register_subclass("world_vla")
@dataclass
class WorldVLAConfig(PreTrainedConfig):
    # --- which arm of the study -------------------------------------------------------------
    # "A" by default so `--policy.type=world_vla` trains out of the box; B, C and C_no_world_input
    # also need `--policy.world_tokens=DIR`.
    variant: str = "A"

    # --- ACT trunk (same meaning as lerobot.policies.act.ACTConfig) ---------------------------
    n_obs_steps: int = 1
    chunk_size: int = 20
    n_action_steps: int = 20
    # Images stay in [0, 1] through the processor (IDENTITY) so the world tokenizer sees the same
    # pixels at training (token table) and inference (live camera); the model applies ImageNet
    # normalisation itself before the ResNet backbone.
    normalization_mapping: dict[str, NormalizationMode] = field(
        default_factory=lambda: {
            "VISUAL": NormalizationMode.IDENTITY,
            "STATE": NormalizationMode.MEAN_STD,
            "ACTION": NormalizationMode.MEAN_STD,
        }
    )
    vision_backbone: str = "resnet18"
    # None by default: no weight download, so CPU/offline runs work. GPU presets set
    # "ResNet18_Weights.IMAGENET1K_V1".
    pretrained_backbone_weights: str | None = None
    replace_final_stride_with_dilation: bool = False
    pre_norm: bool = False
    dim_model: int = 256
    n_heads: int = 8
    dim_feedforward: int = 1024
    feedforward_activation: str = "relu"
    n_encoder_layers: int = 4
    # >= 2 for C and C_no_world_input (see the module docstring); the same for every arm of a study.
    n_decoder_layers: int = 2
    use_vae: bool = True
    latent_dim: int = 32
    n_vae_encoder_layers: int = 4
    temporal_ensemble_coeff: float | None = None
    dropout: float = 0.1
    kl_weight: float = 10.0

    # --- task conditioning --------------------------------------------------------------------
    # The language instructions the policy knows, one learned embedding each (one encoder token).
    # Filled from the training dataset's tasks when empty; saved with the checkpoint. An unknown
    # instruction at inference is an error, never a silent fallback.
    tasks: list[str] = field(default_factory=list)

    # --- world tokens (DESIGN §3) ---------------------------------------------------------------
    # Directory written by `lerobot-world tokenize`; needed to train B, C and C_no_world_input.
    world_tokens: str | None = None
    # Vocabulary size V; None takes it from the table, a value must agree with the table.
    world_vocab_size: int | None = None
    # K: predict w_{t+1} .. w_{t+K}.
    future_offset: int = 8
    # How many tokens C consumes: the current one and world_context - 1 past ones, spaced
    # world_context_stride frames apart (w_t, w_{t-s}, ..., w_{t-(ctx-1)s}): a stride > 1 gives C a
    # longer history for the same number of encoder tokens.
    world_context: int = 4
    world_context_stride: int = 1
    # C only, training only: the probability that a sample's whole world input is replaced by the mask
    # id, so that the "mask" corruption at evaluation means "no world information" (an input C has
    # seen) instead of an out-of-distribution id. Keep it the same for every run of a study.
    world_input_dropout: float = 0.1
    lambda_world: float = 1.0
    # Camera whose frames are tokenized (must be one of the policy's image inputs).
    world_image_key: str = "observation.images.image"
    # Hidden width of variant B's auxiliary MLP head.
    world_aux_hidden_dim: int = 512
    # Filled from the table at training start and saved with the checkpoint: the tokenizer's
    # structure (encoder, sizes) as JSON, so a checkpoint rebuilds it with no table at hand.
    world_tokenizer_spec: str | None = None
    # Filled from the table: its dataset fingerprint (provenance, shown in model cards/reports).
    world_table_fingerprint: str | None = None

    # --- optimizer preset ---------------------------------------------------------------------
    optimizer_lr: float = 1e-4
    optimizer_weight_decay: float = 1e-4
    optimizer_lr_backbone: float = 1e-5
    optimizer_grad_clip_norm: float = 10.0

    def __post_init__(self):
        super().__post_init__()
        if self.variant not in VARIANTS:
            raise WorldVLAConfigError(f"Unknown world_vla variant {self.variant!r}; expected one of {list(VARIANTS)}.")
        if not self.vision_backbone.startswith("resnet"):
            raise WorldVLAConfigError(f"vision_backbone must be a torchvision ResNet, got {self.vision_backbone!r}.")
        if self.temporal_ensemble_coeff is not None and self.n_action_steps > 1:
            raise WorldVLAConfigError(
                f"temporal ensembling queries the policy every step: n_action_steps must be 1, got {self.n_action_steps}."
            )
        if not 1 <= self.n_action_steps <= self.chunk_size:
            raise WorldVLAConfigError(
                f"n_action_steps must be in 1..chunk_size={self.chunk_size}, got {self.n_action_steps}."
            )
        if self.n_obs_steps != 1:
            raise WorldVLAConfigError(f"world_vla uses one observation step, got n_obs_steps={self.n_obs_steps}.")
        if self.future_offset < 1:
            raise WorldVLAConfigError(f"future_offset (K) must be >= 1, got {self.future_offset}.")
        if self.world_context < 1:
            raise WorldVLAConfigError(f"world_context must be >= 1, got {self.world_context}.")
        if self.world_context_stride < 1:
            raise WorldVLAConfigError(f"world_context_stride must be >= 1, got {self.world_context_stride}.")
        if not 0.0 <= self.world_input_dropout < 1.0:
            raise WorldVLAConfigError(f"world_input_dropout must be in [0, 1), got {self.world_input_dropout}.")
        if self.uses_world_queries and self.n_decoder_layers < 2:
            raise WorldVLAConfigError(
                f"variant {self.variant!r} needs n_decoder_layers >= 2 (got {self.n_decoder_layers}): the decoder "
                "starts from zero queries, so the action queries can read the world queries only from its "
                "second layer on."
            )
        if self.lambda_world < 0:
            raise WorldVLAConfigError(f"lambda_world must be >= 0, got {self.lambda_world}.")
        if self.world_vocab_size is not None and self.world_vocab_size < 2:
            raise WorldVLAConfigError(f"world_vocab_size must be >= 2, got {self.world_vocab_size}.")
        visual = self.normalization_mapping.get("VISUAL", NormalizationMode.IDENTITY)
        if NormalizationMode(visual) is not NormalizationMode.IDENTITY:
            raise WorldVLAConfigError(
                f"world_vla needs VISUAL normalization IDENTITY (the model normalises images itself and the "
                f"world tokenizer needs raw [0, 1] pixels), got {visual}."
            )

    # --- what the variant switches on ---------------------------------------------------------
    @property
    def uses_world_input(self) -> bool:
        return self.variant == "C"

    @property
    def predicts_world(self) -> bool:
        return self.variant != "A"

    @property
    def uses_world_queries(self) -> bool:
        return self.variant in ("C", "C_no_world_input")

    @property
    def uses_aux_world_head(self) -> bool:
        return self.variant == "B"

    @property
    def world_history_frames(self) -> int:
        """Frames of token history C's context spans: (world_context - 1) * stride + 1."""
        return (self.world_context - 1) * self.world_context_stride + 1

    @property
    def needs_world_tokenizer(self) -> bool:
        """Every variant that predicts tokens carries the tokenizer, for closed-loop world accuracy."""
        return self.predicts_world

    # --- LeRobot policy-config protocol -------------------------------------------------------
    def get_optimizer_preset(self) -> AdamWConfig:
        return AdamWConfig(
            lr=self.optimizer_lr,
            weight_decay=self.optimizer_weight_decay,
            grad_clip_norm=self.optimizer_grad_clip_norm,
        )

    def get_scheduler_preset(self) -> None:
        return None

    def validate_features(self) -> None:
        if not self.image_features:
            raise ValueError("world_vla needs at least one camera among its inputs (observation.images.*).")
        if self.needs_world_tokenizer and self.world_image_key not in self.image_features:
            raise ValueError(
                f"world_image_key {self.world_image_key!r} is not one of the policy's cameras "
                f"{sorted(self.image_features)}; set --policy.world_image_key to one of them."
            )

    @property
    def observation_delta_indices(self) -> None:
        return None

    @property
    def action_delta_indices(self) -> list:
        return list(range(self.chunk_size))

    @property
    def reward_delta_indices(self) -> None:
        return None
