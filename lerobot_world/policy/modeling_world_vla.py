"""WorldVLAPolicy: LeRobot's ACT trunk plus a discrete world-token stream (DESIGN §1, §3).

The network is built by composition from LeRobot's own ACT (`lerobot.policies.act.modeling_act.ACT`):
its ResNet backbone, VAE encoder, transformer encoder/decoder layers, projections and action head are
used as they are; this module adds only what the study needs and orchestrates the forward pass:

- a task token (one learned embedding per known language instruction), in every variant;
- variant B: an auxiliary MLP head on the mean-pooled encoder output predicting w_{t+1..t+K}; a loss
  only, nothing it computes reaches the actions;
- variants C / C_no_world_input: K future-world queries in the decoder beside the action queries, read
  out by one token head shared across horizons. A block mask in the decoder's self-attention lets the
  action queries attend to the world queries (the actions are conditioned on the forecast) while the
  world queries attend only to each other (the forecast cannot lean on the action queries);
- variant C only: the current and `world_context - 1` past world tokens (`world_context_stride` frames
  apart) embedded as encoder tokens.

Masks that hold in every variant (so the trunks stay equal): no encoder token attends to the VAE latent
token, and the world heads never read the latent's encoder position. In training the latent encodes the
ground-truth future actions; without these masks the world prediction could use it as a shortcut that A
never gets and that is zero at inference.

World tokens come from the token table (by the batch's global `index`) during training and offline
evaluation, and from the tokenizer carried inside the checkpoint on live camera images at inference.
"""

from collections import deque

import torch
import torch.nn.functional as F  # noqa: N812
from lerobot.policies.act.configuration_act import ACTConfig
from lerobot.policies.act.modeling_act import ACT, ACTTemporalEnsembler
from lerobot.policies.pretrained import PreTrainedPolicy
from lerobot.utils.constants import ACTION, OBS_ENV_STATE, OBS_STATE
from torch import Tensor, nn

from lerobot_world.policy.configuration_world_vla import WorldVLAConfig
from lerobot_world.policy.hub import WorldModelCardMixin
from lerobot_world.policy.precision import warn_if_cpu_bf16_is_slow
from lerobot_world.vocabulary import CORRUPTIONS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Context windows of the training episodes kept in a C checkpoint for the "shuffle" corruption.
CORRUPTION_BANK_SIZE = 1024

_ACT_FIELDS = (
    "n_obs_steps chunk_size n_action_steps vision_backbone pretrained_backbone_weights "
    "replace_final_stride_with_dilation pre_norm dim_model n_heads dim_feedforward feedforward_activation "
    "n_encoder_layers n_decoder_layers use_vae latent_dim n_vae_encoder_layers dropout kl_weight"
).split()


def act_config_for(config: WorldVLAConfig) -> ACTConfig:
    """The ACTConfig with world_vla's trunk settings, used to build LeRobot's ACT modules."""
    return ACTConfig(
        **{name: getattr(config, name) for name in _ACT_FIELDS},
        input_features=config.input_features,
        output_features=config.output_features,
        device=config.device,
    )


class WorldACT(nn.Module):
    """LeRobot's ACT plus the world-token parts that the variant switches on."""

    def __init__(self, config: WorldVLAConfig):
        super().__init__()
        self.config = config
        self.act = ACT(act_config_for(config))
        dim = config.dim_model
        self.register_buffer("image_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

        if config.tasks:
            self.task_embed = nn.Embedding(len(config.tasks), dim)
            self.task_pos_embed = nn.Embedding(1, dim)
        vocab, horizon = config.world_vocab_size, config.future_offset
        if config.uses_world_input:
            # Row `vocab` is the mask id (world-input dropout in training, the "mask" corruption).
            self.world_token_embed = nn.Embedding(vocab + 1, dim)
            self.world_context_pos_embed = nn.Embedding(config.world_context, dim)
            # Real training-table world inputs for the corruption test, saved with the checkpoint so that
            # closed loop (no table at hand) corrupts with in-distribution tokens too: context windows of
            # training episodes ("shuffle") and the training tokens' frequencies ("random").
            self.register_buffer(
                "corruption_windows", torch.zeros(CORRUPTION_BANK_SIZE, config.world_context, dtype=torch.long)
            )
            self.register_buffer("corruption_token_freq", torch.zeros(vocab, dtype=torch.float64))
        if config.uses_world_queries:
            self.world_query_pos_embed = nn.Embedding(horizon, dim)
            self.world_head = nn.Linear(dim, vocab)
        if config.uses_aux_world_head:
            self.world_aux_head = nn.Sequential(
                nn.Linear(dim, config.world_aux_hidden_dim),
                nn.GELU(),
                nn.Linear(config.world_aux_hidden_dim, horizon * vocab),
            )

    def forward(
        self,
        batch: dict[str, Tensor],
        images: list[Tensor],
        task_ids: Tensor | None,
        world_context: Tensor | None,
    ) -> tuple[Tensor, Tensor | None, tuple[Tensor | None, Tensor | None]]:
        """Returns actions (B, chunk, A), world logits (B, K, V) or None, and the VAE's (mu, log_sigma_x2)."""
        act, cfg = self.act, self.config
        batch_size = images[0].shape[0]
        state = batch.get(OBS_STATE)

        # Latent: the VAE encoder's sample in training, zeros otherwise (as in LeRobot's ACT).
        mu = log_sigma_x2 = None
        if cfg.use_vae and self.training and ACTION in batch:
            tokens = [act.vae_encoder_cls_embed.weight.expand(batch_size, 1, -1)]
            if act.config.robot_state_feature:
                tokens.append(act.vae_encoder_robot_state_input_proj(state).unsqueeze(1))
            tokens.append(act.vae_encoder_action_input_proj(batch[ACTION]))
            vae_in = torch.cat(tokens, dim=1).permute(1, 0, 2)
            n_prefix = vae_in.shape[0] - batch[ACTION].shape[1]
            pad = torch.cat(
                [torch.zeros(batch_size, n_prefix, dtype=torch.bool, device=vae_in.device), batch["action_is_pad"]],
                dim=1,
            )
            cls_out = act.vae_encoder(
                vae_in, pos_embed=act.vae_encoder_pos_enc.permute(1, 0, 2), key_padding_mask=pad
            )[0]
            params = act.vae_encoder_latent_output_proj(cls_out)
            mu, log_sigma_x2 = params[:, : cfg.latent_dim], params[:, cfg.latent_dim :]
            latent = mu + log_sigma_x2.div(2).exp() * torch.randn_like(mu)
        else:
            latent = torch.zeros(batch_size, cfg.latent_dim, device=images[0].device, dtype=images[0].dtype)

        # 1-D encoder tokens: [latent, (state), (env state), (task), (world context...)].
        tokens = [act.encoder_latent_input_proj(latent)]
        if act.config.robot_state_feature:
            tokens.append(act.encoder_robot_state_input_proj(state))
        if act.config.env_state_feature:
            tokens.append(act.encoder_env_state_input_proj(batch[OBS_ENV_STATE]))
        tokens_1d = torch.stack(tokens, dim=0)
        pos_1d = act.encoder_1d_feature_pos_embed.weight.unsqueeze(1)
        seq, pos = [tokens_1d], [pos_1d.expand(-1, batch_size, -1)]
        if task_ids is not None:
            seq.append(self.task_embed(task_ids).unsqueeze(0))
            pos.append(self.task_pos_embed.weight.unsqueeze(1).expand(-1, batch_size, -1))
        if cfg.uses_world_input:
            seq.append(self.world_token_embed(world_context).transpose(0, 1))  # (ctx, B, D)
            pos.append(self.world_context_pos_embed.weight.unsqueeze(1).expand(-1, batch_size, -1))

        # Camera tokens through the shared ResNet backbone (ImageNet-normalised here: the processor
        # leaves images in [0, 1] for the world tokenizer).
        for features in self._camera_features(images):
            cam_pos = act.encoder_cam_feat_pos_embed(features).to(dtype=features.dtype)
            features = act.encoder_img_feat_input_proj(features)
            seq.append(features.flatten(2).permute(2, 0, 1))  # (h*w, B, D)
            pos.append(cam_pos.flatten(2).permute(2, 0, 1).expand(-1, batch_size, -1))

        encoder_in, encoder_pos = torch.cat(seq, dim=0), torch.cat(pos, dim=0)
        # Position 0 is the latent: no encoder token reads it (its own position keeps it through the
        # residual), so everything but that position is independent of the latent.
        latent_key_mask = torch.zeros(batch_size, encoder_in.shape[0], dtype=torch.bool, device=encoder_in.device)
        latent_key_mask[:, 0] = True
        encoder_out = act.encoder(encoder_in, pos_embed=encoder_pos, key_padding_mask=latent_key_mask)

        # Decoder: the chunk's action queries, then (C, C_no_world_input) the K world queries.
        query_pos = act.decoder_pos_embed.weight
        self_mask = cross_mask = None
        if cfg.uses_world_queries:
            query_pos = torch.cat([query_pos, self.world_query_pos_embed.weight], dim=0)
            self_mask, cross_mask = self._decoder_masks(encoder_in.shape[0], encoder_in.device)
        x = torch.zeros(query_pos.shape[0], batch_size, cfg.dim_model, dtype=encoder_pos.dtype, device=encoder_pos.device)
        query_pos = query_pos.unsqueeze(1)
        for layer in act.decoder.layers:
            x = masked_decoder_layer(layer, x, encoder_out, query_pos, encoder_pos, self_mask, cross_mask)
        decoder_out = act.decoder.norm(x).transpose(0, 1)
        actions = act.action_head(decoder_out[:, : cfg.chunk_size])

        world_logits = None
        if cfg.uses_world_queries:
            world_logits = self.world_head(decoder_out[:, cfg.chunk_size :])
        elif cfg.uses_aux_world_head:
            pooled = encoder_out[1:].mean(dim=0)  # without the latent's position
            world_logits = self.world_aux_head(pooled).view(batch_size, cfg.future_offset, -1)
        return actions, world_logits, (mu, log_sigma_x2)


    def _camera_features(self, images: list[Tensor]) -> list[Tensor]:
        """Backbone feature maps, one per camera, from one backbone call over all cameras.

        Same values as one call per camera (LeRobot's ACT loop): the backbone's batch norms are frozen, so
        no sample sees another. One call of batch n_cameras x B and channels_last input (oneDNN's native
        layout: no reorder around every convolution) made the 2-camera cpu_small step ~1.2x faster on
        2 CPU cores (scripts/bench_policy_step.py). Cameras of different sizes go one call each."""
        backbone = self.act.backbone
        if len({tuple(img.shape) for img in images}) > 1:
            return [backbone(self._backbone_input(img))["feature_map"] for img in images]
        features = backbone(self._backbone_input(torch.cat(images, dim=0)))["feature_map"]
        return list(features.contiguous().chunk(len(images), dim=0))

    def _backbone_input(self, img: Tensor) -> Tensor:
        return ((img - self.image_mean) / self.image_std).contiguous(memory_format=torch.channels_last)

    def _decoder_masks(self, n_memory: int, device) -> tuple[Tensor, Tensor]:
        """Boolean masks (True = may not attend) for [action queries; world queries].

        Self-attention: world queries see only world queries; action queries see everything.
        Cross-attention: world queries do not see encoder position 0 (the latent)."""
        n_act, n_all = self.config.chunk_size, self.config.chunk_size + self.config.future_offset
        self_mask = torch.zeros(n_all, n_all, dtype=torch.bool, device=device)
        self_mask[n_act:, :n_act] = True
        cross_mask = torch.zeros(n_all, n_memory, dtype=torch.bool, device=device)
        cross_mask[n_act:, 0] = True
        return self_mask, cross_mask


def masked_decoder_layer(layer, x, memory, query_pos, memory_pos, self_mask, cross_mask) -> Tensor:
    """LeRobot's `ACTDecoderLayer.forward` with attention masks, on the layer's own modules.

    Written out here because LeRobot's layer takes no mask argument; the order of operations is the
    layer's own (pre/post-norm, dropouts, feed-forward), only `attn_mask` is added to both attentions."""
    skip = x
    if layer.pre_norm:
        x = layer.norm1(x)
    q = k = layer.maybe_add_pos_embed(x, query_pos)
    x = layer.self_attn(q, k, value=x, attn_mask=self_mask, need_weights=False)[0]
    x = skip + layer.dropout1(x)
    if layer.pre_norm:
        skip = x
        x = layer.norm2(x)
    else:
        x = layer.norm1(x)
        skip = x
    x = layer.multihead_attn(
        query=layer.maybe_add_pos_embed(x, query_pos),
        key=layer.maybe_add_pos_embed(memory, memory_pos),
        value=memory,
        attn_mask=cross_mask,
        need_weights=False,
    )[0]
    x = skip + layer.dropout2(x)
    if layer.pre_norm:
        skip = x
        x = layer.norm3(x)
    else:
        x = layer.norm2(x)
        skip = x
    x = layer.linear2(layer.dropout(layer.activation(layer.linear1(x))))
    x = skip + layer.dropout3(x)
    if not layer.pre_norm:
        x = layer.norm3(x)
    return x


class WorldVLAPolicy(WorldModelCardMixin, PreTrainedPolicy):
    """ACT-style action chunking with a world-token stream; `config.variant` picks the study arm.
    The mixin makes LeRobot's Hub push write a model card naming the variant and world settings."""

    config_class = WorldVLAConfig
    name = "world_vla"

    def __init__(self, config: WorldVLAConfig, dataset_stats=None, dataset_meta=None, **kwargs):
        super().__init__(config)
        config.validate_features()
        warn_if_cpu_bf16_is_slow(config)
        self.config = config
        self._table = None
        table_tokenizer = None
        if dataset_meta is not None:
            self._take_tasks_from(dataset_meta)
            if config.predicts_world:
                table_tokenizer = self._attach_table(dataset_meta)
        if config.predicts_world and (config.world_tokenizer_spec is None or config.world_vocab_size is None):
            raise ValueError(
                f"world_vla variant {config.variant!r} predicts world tokens and needs a token table: pass "
                "--policy.world_tokens=DIR (made by `lerobot-world tokenize`)."
            )
        self.model = WorldACT(config)
        if self._table is not None and config.uses_world_input:
            self._fill_corruption_bank()
        if config.needs_world_tokenizer:
            from lerobot_world.tokens.tokenizer import WorldTokenizer

            tokenizer = (
                table_tokenizer
                if table_tokenizer is not None
                else WorldTokenizer.from_spec_json(config.world_tokenizer_spec)
            )
            for p in tokenizer.parameters():
                p.requires_grad_(False)
            self.world_tokenizer = tokenizer
        if config.temporal_ensemble_coeff is not None:
            self.temporal_ensembler = ACTTemporalEnsembler(config.temporal_ensemble_coeff, config.chunk_size)
        self._task_to_id = {task: i for i, task in enumerate(config.tasks)}
        # Corruption of the world input (None | "random" | "shuffle" | "mask"), set by the evaluators.
        self.world_corruption: str | None = None
        self.reset()

    # --- set-up from the training dataset ---------------------------------------------------------
    def _take_tasks_from(self, dataset_meta) -> None:
        tasks = [str(t) for t in dataset_meta.tasks.index]
        if not self.config.tasks:
            self.config.tasks = sorted(tasks)
            return
        unknown = sorted(set(tasks) - set(self.config.tasks))
        if unknown:
            raise ValueError(
                f"the dataset has tasks the policy was not configured for: {unknown[:3]} "
                f"(policy knows {len(self.config.tasks)} tasks)."
            )

    def _attach_table(self, dataset_meta):
        """Load the token table, check it against the dataset and fill the config's world fields.
        Returns the table's tokenizer (built once: for a pretrained encoder that loads a model)."""
        from lerobot_world.tokens.table import WorldTokenTable

        cfg = self.config
        if not cfg.world_tokens:
            raise ValueError(
                f"world_vla variant {cfg.variant!r} predicts world tokens: pass --policy.world_tokens=DIR "
                "(a table made by `lerobot-world tokenize` for this dataset)."
            )
        table = WorldTokenTable.load(cfg.world_tokens)
        table.check_matches(dataset_meta)
        if cfg.world_vocab_size is not None and cfg.world_vocab_size != table.vocab_size:
            raise ValueError(
                f"--policy.world_vocab_size={cfg.world_vocab_size} disagrees with the token table at "
                f"{cfg.world_tokens} (vocab size {table.vocab_size})."
            )
        table_key = table.meta.get("image_key")
        if table_key is not None and table_key != cfg.world_image_key:
            raise ValueError(
                f"--policy.world_image_key={cfg.world_image_key!r} but the token table at {cfg.world_tokens} "
                f"tokenized {table_key!r}."
            )
        cfg.world_vocab_size = table.vocab_size
        tokenizer = table.build_tokenizer()
        cfg.world_tokenizer_spec = tokenizer.spec_json()
        cfg.world_table_fingerprint = table.fingerprint
        self._table = table
        episodes = table.episode_index
        # First global index of each frame's episode, to clamp context lookups at episode starts.
        _, counts = torch.unique_consecutive(episodes, return_counts=True)
        starts = torch.cumsum(counts, 0) - counts
        self._episode_start = torch.repeat_interleave(starts, counts)
        return tokenizer

    def _fill_corruption_bank(self) -> None:
        """Real world inputs of the training episodes for the corruption test (C only): a seeded sample
        of context windows, and the training tokens' frequencies. Saved in the checkpoint's buffers."""
        table, model = self._table, self.model
        train = torch.isin(table.episode_index, torch.tensor(table.train_episodes, dtype=table.episode_index.dtype))
        frames = train.nonzero().flatten()
        if frames.numel() == 0:
            raise ValueError(f"the token table at {self.config.world_tokens} has no training frames.")
        rng = torch.Generator().manual_seed(0)
        pick = frames[torch.randint(0, frames.numel(), (model.corruption_windows.shape[0],), generator=rng)]
        model.corruption_windows.copy_(table.tokens[self._context_indices(pick)])
        counts = torch.bincount(table.tokens[frames], minlength=table.vocab_size).double()
        model.corruption_token_freq.copy_(counts / counts.sum())

    # --- LeRobot policy protocol ------------------------------------------------------------------
    def get_optim_params(self) -> list[dict]:
        trainable = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        backbone = [p for n, p in trainable if n.startswith("model.act.backbone")]
        rest = [p for n, p in trainable if not n.startswith("model.act.backbone")]
        return [{"params": rest}, {"params": backbone, "lr": self.config.optimizer_lr_backbone}]

    def reset(self):
        """Call on environment reset: clears the action queue and the world-token history."""
        if self.config.temporal_ensemble_coeff is not None:
            self.temporal_ensembler.reset()
        else:
            self._action_queue = deque([], maxlen=self.config.n_action_steps)
        self._world_history: Tensor | None = None
        self._corruption_rng = torch.Generator().manual_seed(0)
        self.last_world_observed: Tensor | None = None
        self.last_world_predicted: Tensor | None = None
        self.last_world_predicted_top5: Tensor | None = None

    # --- the evaluators' contract ------------------------------------------------------------------
    # eval-offline and eval-sim use only these public members: `world_corruption` (None or a mode of
    # CORRUPTIONS), `reseed_world_corruption`, `gather_world`, `token_table`, and after each prediction
    # `last_world_observed` (B,), `last_world_predicted` (B, K), `last_world_predicted_top5` (B, K, 5).
    def reseed_world_corruption(self, seed: int) -> None:
        """Seed the draws of the "random" and "shuffle" corruptions (deterministic evaluations)."""
        self._corruption_rng.manual_seed(int(seed))

    @property
    def token_table(self):
        """The training token table (a `WorldTokenTable`), or None when none is attached."""
        return self._table

    def gather_world(self, batch: dict) -> tuple[Tensor, Tensor, Tensor]:
        """(context (B, ctx) oldest-first, targets (B, K), valid (B, K)) from the token table, as in training."""
        return self._gather_world(batch)

    @torch.no_grad()
    def select_action(self, batch: dict[str, Tensor]) -> Tensor:
        """One action per call; the world-token history advances every call, chunks are predicted on demand."""
        self.eval()
        context = self._observe_world(batch)
        self.last_world_predicted = self.last_world_predicted_top5 = None
        if self.config.temporal_ensemble_coeff is not None:
            return self.temporal_ensembler.update(self._predict_chunk(batch, context))
        if len(self._action_queue) == 0:
            actions = self._predict_chunk(batch, context)[:, : self.config.n_action_steps]
            self._action_queue.extend(actions.transpose(0, 1))
        return self._action_queue.popleft()

    @torch.no_grad()
    def predict_action_chunk(self, batch: dict[str, Tensor]) -> Tensor:
        """A (B, chunk_size, action_dim) chunk. Dataset batches (with `index`) read world tokens from the
        table, exactly as in training; live observations are tokenized online."""
        self.eval()
        if self._table is not None and "index" in batch:
            context = self._gather_world(batch)[0] if self.config.uses_world_input else None
        else:
            context = self._observe_world(batch)
        return self._predict_chunk(batch, context)

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict]:
        """Training/validation loss: L1 on actions (+ KL) + lambda_world * CE on valid future tokens."""
        cfg = self.config
        context = targets = valid = None
        if cfg.predicts_world:
            context, targets, valid = self._gather_world(batch)
        if context is not None and cfg.uses_world_input:
            context = self._world_input_dropout(context)
        actions_hat, world_logits, (mu, log_sigma_x2) = self.model(
            batch, self._images(batch), self._task_ids(batch), self._corrupt(context)
        )

        abs_err = F.l1_loss(batch[ACTION], actions_hat, reduction="none")
        not_pad = ~batch["action_is_pad"].unsqueeze(-1)
        l1_loss = (abs_err * not_pad).sum() / (not_pad.sum() * abs_err.shape[-1]).clamp_min(1)
        loss = l1_loss
        info = {"l1_loss": l1_loss.item()}
        if cfg.use_vae and log_sigma_x2 is not None:
            kld = (-0.5 * (1 + log_sigma_x2 - mu.pow(2) - log_sigma_x2.exp())).sum(-1).mean()
            loss = loss + cfg.kl_weight * kld
            info["kld_loss"] = kld.item()
        if world_logits is not None:
            world_ce, world_info = world_loss_and_metrics(world_logits, targets.to(world_logits.device), valid.to(world_logits.device))
            loss = loss + cfg.lambda_world * world_ce
            info.update(world_info)
        return loss, info

    # --- internals ----------------------------------------------------------------------------------
    def _images(self, batch: dict[str, Tensor]) -> list[Tensor]:
        missing = [key for key in self.config.image_features if key not in batch]
        if missing:
            raise KeyError(f"observation is missing camera(s) {missing}; the policy expects {list(self.config.image_features)}.")
        return [batch[key] for key in self.config.image_features]

    def _task_ids(self, batch: dict) -> Tensor | None:
        if not self.config.tasks:
            return None
        device = next(iter(self.model.task_embed.parameters())).device
        tasks = batch.get("task")
        if tasks is None:
            if len(self.config.tasks) == 1:
                batch_size = self._images(batch)[0].shape[0]
                return torch.zeros(batch_size, dtype=torch.long, device=device)
            raise ValueError(
                f"the observation has no 'task' instruction; this policy was trained on {len(self.config.tasks)} tasks."
            )
        if isinstance(tasks, str):
            tasks = [tasks]
        ids = []
        for task in tasks:
            if task not in self._task_to_id:
                raise ValueError(
                    f"task {task!r} is not one the policy was trained on; known tasks: {self.config.tasks[:5]}"
                    + (" ..." if len(self.config.tasks) > 5 else "")
                )
            ids.append(self._task_to_id[task])
        ids = torch.tensor(ids, dtype=torch.long, device=device)
        batch_size = self._images(batch)[0].shape[0]
        if ids.shape[0] == 1 and batch_size > 1:
            ids = ids.expand(batch_size)
        return ids

    def _gather_world(self, batch: dict) -> tuple[Tensor, Tensor, Tensor]:
        """(context (B, ctx) oldest-first, targets (B, K), valid (B, K)) from the token table.

        Context before the episode start repeats the episode's first token (what `reset()` does online);
        targets past the episode end are masked out, never clamped.
        """
        if self._table is None:
            raise ValueError(
                "this world_vla policy has no token table attached; training and dataset evaluation need "
                "--policy.world_tokens=DIR and the dataset's metadata."
            )
        cfg, table = self.config, self._table
        device = batch[ACTION].device if ACTION in batch else self._images(batch)[0].device
        index = batch["index"].reshape(-1).long().cpu()
        n_frames = table.tokens.shape[0]
        if int(index.max()) >= n_frames:
            raise ValueError(
                f"frame index {int(index.max())} is outside the token table at {cfg.world_tokens} ({n_frames} frames)."
            )
        episode = table.episode_index[index]
        if "episode_index" in batch and not torch.equal(batch["episode_index"].reshape(-1).long().cpu(), episode):
            raise ValueError(
                f"the token table at {cfg.world_tokens} disagrees with the dataset's episode_index for the same "
                "frames; re-run `lerobot-world tokenize` for this dataset."
            )
        context_idx = self._context_indices(index)
        future_idx = index[:, None] + torch.arange(1, cfg.future_offset + 1)[None]
        in_range = future_idx < n_frames
        future_idx = future_idx.clamp(max=n_frames - 1)
        valid = in_range & (table.episode_index[future_idx] == episode[:, None])
        context = table.tokens[context_idx].to(device)
        return context, table.tokens[future_idx].to(device), valid.to(device)

    def _context_indices(self, index: Tensor) -> Tensor:
        """(B, ctx) global frame indices of the context of frames `index`: t-(ctx-1)s, ..., t-s, t, where
        frames before the episode start repeat its first frame (what `reset()` does online)."""
        cfg = self.config
        back = torch.arange(cfg.world_context - 1, -1, -1) * cfg.world_context_stride
        return torch.maximum(index[:, None] - back[None], self._episode_start[index][:, None])

    def _observe_world(self, batch: dict) -> Tensor | None:
        """Tokenize the live frame, advance the history; returns the (B, ctx) context for C."""
        if not self.config.needs_world_tokenizer:
            return None
        image = batch[self.config.world_image_key]
        token = self.world_tokenizer(image).to(image.device)
        # The last world_history_frames tokens, oldest first; the context is every stride-th of them.
        history = self._world_history
        if history is None or history.shape[0] != token.shape[0]:
            history = token[:, None].repeat(1, self.config.world_history_frames)
        else:
            history = torch.cat([history[:, 1:], token[:, None]], dim=1)
        self._world_history = history
        self.last_world_observed = token
        return history[:, :: self.config.world_context_stride] if self.config.uses_world_input else None

    def _world_input_dropout(self, context: Tensor) -> Tensor:
        """Training only: replace whole samples' world input by the mask id with probability p."""
        p = self.config.world_input_dropout
        if not self.training or p <= 0:
            return context
        drop = torch.rand(context.shape[0], device=context.device) < p
        return torch.where(drop[:, None], torch.full_like(context, self.config.world_vocab_size), context)

    def _corrupt(self, context: Tensor | None) -> Tensor | None:
        """Apply `self.world_corruption` to the world input (the causal test of DESIGN §5).

        "shuffle": each sample gets a real context window of a training episode (saved in the checkpoint);
        "random": every token drawn from the training tokens' frequencies; both are in the training
        distribution, at any batch size. "mask": the mask id, which C saw in training through
        `world_input_dropout` (with dropout 0 it is an out-of-distribution input)."""
        mode = self.world_corruption
        if mode is None or context is None:
            return context
        if mode not in CORRUPTIONS:
            raise ValueError(f"world_corruption must be one of {CORRUPTIONS} or None, got {mode!r}.")
        if mode == "mask":
            return torch.full_like(context, self.config.world_vocab_size)
        windows, freq = self.model.corruption_windows, self.model.corruption_token_freq
        if float(freq.sum()) <= 0:
            raise ValueError(
                "this world_vla checkpoint carries no training world tokens for the corruption test "
                "(saved before they were kept, or built without a token table)."
            )
        rng, (n, ctx) = self._corruption_rng, context.shape
        if mode == "shuffle":
            drawn = windows.cpu()[torch.randint(0, windows.shape[0], (n,), generator=rng)]
        else:
            drawn = torch.multinomial(freq.cpu(), n * ctx, replacement=True, generator=rng).view(n, ctx)
        return drawn.to(context.device)

    def _predict_chunk(self, batch: dict, context: Tensor | None) -> Tensor:
        actions, world_logits, _ = self.model(batch, self._images(batch), self._task_ids(batch), self._corrupt(context))
        if world_logits is None:
            self.last_world_predicted = self.last_world_predicted_top5 = None
        else:
            top = world_logits.topk(min(5, world_logits.shape[-1]), dim=-1).indices
            self.last_world_predicted, self.last_world_predicted_top5 = top[..., 0], top
        # Under autocast (use_amp) the heads give bf16; actions leave the policy as float32, as in fp32: LeRobot's
        # postprocessors follow the action's dtype and lerobot-eval converts it to numpy, which has no bf16.
        return actions.float()


def world_loss_and_metrics(logits: Tensor, targets: Tensor, valid: Tensor) -> tuple[Tensor, dict[str, float]]:
    """Cross-entropy over valid (B, K) targets, plus top-1 / top-5 accuracy overall and per horizon k."""
    n_valid = valid.sum()
    if n_valid == 0:
        ce = logits.sum() * 0.0
    else:
        ce = F.cross_entropy(logits[valid], targets[valid])
    topk = logits.topk(min(5, logits.shape[-1]), dim=-1).indices  # (B, K, 5)
    hit1 = (topk[..., 0] == targets) & valid
    hit5 = (topk == targets[..., None]).any(-1) & valid
    info = {"world_ce": ce.item()}
    denom = max(int(n_valid), 1)
    info["world_top1"] = hit1.sum().item() / denom
    info["world_top5"] = hit5.sum().item() / denom
    per_k_valid = valid.sum(0).clamp_min(1)
    for k, (h1, h5, nv) in enumerate(zip(hit1.sum(0), hit5.sum(0), per_k_valid, strict=True), start=1):
        info[f"world_top1_k{k}"] = (h1 / nv).item()
        info[f"world_top5_k{k}"] = (h5 / nv).item()
    return ce, info
