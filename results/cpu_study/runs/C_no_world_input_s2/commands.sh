#!/usr/bin/env bash
# Run C_no_world_input_s2 of matrix 'cpu_study': every command the matrix runner executed for it, in order
# (retried and resumed trainings included). Run from the repository root: relative paths are relative
# to it. OUTPUT_DIR is the matrix's output folder (the cache of tables and checkpoints).
set -euo pipefail
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
OUTPUT_DIR=${OUTPUT_DIR:-~/.cache/lerobot-world/cpu_study}

# stage: table
lerobot-world tokenize --dataset.repo_id=local/libero10_demos_96 --dataset.root=../shared/data/libero10_demos_96 --encoder=pixel_pca --vocab_size=64 --eval_split=0.2 --output_dir="$OUTPUT_DIR"/tables/local-libero10_demos_96__pixel_pca__v64
# stage: train
WANDB_RUN_GROUP=cpu_study lerobot-train --policy.type=world_vla --policy.device=cpu --policy.push_to_hub=false --policy.pretrained_backbone_weights=null --policy.vision_backbone=resnet18 --policy.dim_model=256 --policy.n_heads=8 --policy.dim_feedforward=1024 --policy.n_encoder_layers=2 --policy.n_decoder_layers=2 --policy.n_vae_encoder_layers=2 --policy.latent_dim=32 --policy.chunk_size=20 --policy.n_action_steps=20 --policy.future_offset=8 --policy.world_context=4 --policy.lambda_world=1.0 --policy.world_image_key=observation.images.image --policy.use_amp=true --policy.variant=C_no_world_input --policy.world_tokens="$OUTPUT_DIR"/tables/local-libero10_demos_96__pixel_pca__v64 --policy.world_vocab_size=64 --steps=12000 --batch_size=16 --num_workers=1 --log_freq=50 --save_freq=1000 --seed=2 --dataset.eval_split=0.2 --wandb.enable=true --wandb.mode=offline --wandb.project=lerobot-world --job_name=C_no_world_input_s2 --dataset.repo_id=local/libero10_demos_96 --dataset.root=../shared/data/libero10_demos_96 --output_dir="$OUTPUT_DIR"/runs/C_no_world_input_s2/train
# stage: train
WANDB_RUN_GROUP=cpu_study lerobot-train --config_path="$OUTPUT_DIR"/runs/C_no_world_input_s2/train/checkpoints/last/pretrained_model/train_config.json --resume=true --steps=12000
# stage: eval_offline
lerobot-world eval-offline --policy.path="$OUTPUT_DIR"/runs/C_no_world_input_s2/train/checkpoints/last/pretrained_model --dataset.repo_id=local/libero10_demos_96 --dataset.root=../shared/data/libero10_demos_96 --output_dir="$OUTPUT_DIR"/runs/C_no_world_input_s2/eval_offline
# stage: eval_sim
lerobot-world eval-sim --policy.path="$OUTPUT_DIR"/runs/C_no_world_input_s2/train/checkpoints/last/pretrained_model --output_dir="$OUTPUT_DIR"/runs/C_no_world_input_s2/eval_sim --env.task=libero_10 '--env.task_ids=[0,4,6,7]' --n_episodes_per_task=20 --max_videos_per_task=1 --batch_size=2 --use_async_envs=true
# stage: eval_sim
lerobot-world eval-sim --policy.path="$OUTPUT_DIR"/runs/C_no_world_input_s2/train/checkpoints/last/pretrained_model --output_dir="$OUTPUT_DIR"/runs/C_no_world_input_s2/eval_sim --env.task=libero_10 '--env.task_ids=[0,4,6,7]' --n_episodes_per_task=20 --max_videos_per_task=1 --batch_size=2 --use_async_envs=true
