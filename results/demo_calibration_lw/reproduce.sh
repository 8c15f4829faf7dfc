#!/usr/bin/env bash
# Matrix 'demo_calibration_lw': every command the runner executes, from scratch, in order.
# Preset: configs/policy/cpu_small.json; made by `lerobot-world matrix`. Run from the repository root. Interrupted
# trainings are resumed with: lerobot-train --config_path=RUN/train/checkpoints/last/pretrained_model/train_config.json --resume=true
set -euo pipefail
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
OUTPUT_DIR=${OUTPUT_DIR:-~/.cache/lerobot-world/demo_calibration_lw}

lerobot-world tokenize --dataset.repo_id=local/libero_object0_demos_64 --dataset.root=/root/.cache/lerobot-world/data/libero_object0_demos_64 --encoder=pixel_pca --vocab_size=32 --eval_split=0.2 --output_dir="$OUTPUT_DIR"/tables/local-libero_object0_demos_64__pixel_pca__v32

# C_s0
WANDB_RUN_GROUP=demo_calibration_lw lerobot-train --policy.type=world_vla --policy.device=cpu --policy.push_to_hub=false --policy.pretrained_backbone_weights=null --policy.vision_backbone=resnet18 --policy.dim_model=256 --policy.n_heads=8 --policy.dim_feedforward=1024 --policy.n_encoder_layers=2 --policy.n_decoder_layers=2 --policy.n_vae_encoder_layers=2 --policy.latent_dim=32 --policy.chunk_size=20 --policy.n_action_steps=20 --policy.future_offset=8 --policy.world_context=4 --policy.lambda_world=0.1 --policy.world_image_key=observation.images.image --policy.use_amp=false --policy.variant=C --policy.world_tokens="$OUTPUT_DIR"/tables/local-libero_object0_demos_64__pixel_pca__v32 --policy.world_vocab_size=32 --steps=500 --batch_size=16 --num_workers=1 --log_freq=50 --save_freq=500 --seed=0 --dataset.eval_split=0.2 --wandb.enable=true --wandb.mode=offline --wandb.project=lerobot-world --job_name=C_s0 --dataset.repo_id=local/libero_object0_demos_64 --dataset.root=/root/.cache/lerobot-world/data/libero_object0_demos_64 --output_dir="$OUTPUT_DIR"/runs/C_s0/train
lerobot-world eval-sim --policy.path="$OUTPUT_DIR"/runs/C_s0/train/checkpoints/000500/pretrained_model --output_dir="$OUTPUT_DIR"/runs/C_s0/eval_sim_step500 --env.task=libero_object '--env.task_ids=[0]' --n_episodes_per_task=10 --init_state_start=10 --max_videos_per_task=0 --batch_size=2 --use_async_envs=true
WANDB_RUN_GROUP=demo_calibration_lw lerobot-train --config_path="$OUTPUT_DIR"/runs/C_s0/train/checkpoints/last/pretrained_model/train_config.json --resume=true --steps=1000
lerobot-world eval-sim --policy.path="$OUTPUT_DIR"/runs/C_s0/train/checkpoints/001000/pretrained_model --output_dir="$OUTPUT_DIR"/runs/C_s0/eval_sim_step1000 --env.task=libero_object '--env.task_ids=[0]' --n_episodes_per_task=10 --init_state_start=10 --max_videos_per_task=0 --batch_size=2 --use_async_envs=true
WANDB_RUN_GROUP=demo_calibration_lw lerobot-train --config_path="$OUTPUT_DIR"/runs/C_s0/train/checkpoints/last/pretrained_model/train_config.json --resume=true --steps=1500
lerobot-world eval-sim --policy.path="$OUTPUT_DIR"/runs/C_s0/train/checkpoints/001500/pretrained_model --output_dir="$OUTPUT_DIR"/runs/C_s0/eval_sim_step1500 --env.task=libero_object '--env.task_ids=[0]' --n_episodes_per_task=10 --init_state_start=10 --max_videos_per_task=0 --batch_size=2 --use_async_envs=true
WANDB_RUN_GROUP=demo_calibration_lw lerobot-train --config_path="$OUTPUT_DIR"/runs/C_s0/train/checkpoints/last/pretrained_model/train_config.json --resume=true --steps=2000
lerobot-world eval-sim --policy.path="$OUTPUT_DIR"/runs/C_s0/train/checkpoints/002000/pretrained_model --output_dir="$OUTPUT_DIR"/runs/C_s0/eval_sim_step2000 --env.task=libero_object '--env.task_ids=[0]' --n_episodes_per_task=10 --init_state_start=10 --max_videos_per_task=0 --batch_size=2 --use_async_envs=true
WANDB_RUN_GROUP=demo_calibration_lw lerobot-train --config_path="$OUTPUT_DIR"/runs/C_s0/train/checkpoints/last/pretrained_model/train_config.json --resume=true --steps=3000
lerobot-world eval-sim --policy.path="$OUTPUT_DIR"/runs/C_s0/train/checkpoints/last/pretrained_model --output_dir="$OUTPUT_DIR"/runs/C_s0/eval_sim --env.task=libero_object '--env.task_ids=[0]' --n_episodes_per_task=10 --init_state_start=10 --max_videos_per_task=0 --batch_size=2 --use_async_envs=true
