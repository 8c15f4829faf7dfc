#!/usr/bin/env bash
# GPU check: on a machine with a CUDA GPU, run the default tests on CUDA, a short real training of
# world_vla C with mixed precision on a LIBERO-shaped dataset, and the tokenizer benchmark (k-means at
# LIBERO scale, DINOv2-base encode rate, tokenize's encode stage vs the encoder's forward rate); print numbers.
#   make setup && scripts/gpu_check.sh [OUT_DIR]
#   scripts/gpu_check.sh --smoke [OUT_DIR]   # every step at toy size on CPU: checks this script without a GPU
set -euo pipefail
cd "$(dirname "$0")/.."
SMOKE=0
if [ "${1:-}" = "--smoke" ]; then SMOKE=1; shift; fi
PY=.venv/bin/python
OUT=${1:-outputs/gpu_check}
export HF_HUB_OFFLINE=1 WANDB_MODE=offline MUJOCO_GL=egl PYOPENGL_PLATFORM=egl
if [ $SMOKE = 1 ]; then
  DEVICE=cpu; AMP=false; STEPS=4; BATCH=4; SIZE=32; EPISODES=2; WORKERS=0; SAVE=4
  BENCH=(--frames=3000 --dim=32 --vocab=16 --dinov2=tiny --encode_frames=64 --dinov2_frames=16 --image_size=64
         --pipeline_episodes=3 --num_workers=1 --forward_frames=64 --device=cpu)
else
  DEVICE=cuda; AMP=true; STEPS=500; BATCH=32; SIZE=128; EPISODES=10; WORKERS=4; SAVE=500
  BENCH=(--dinov2=base --num_workers=8)
  $PY - <<'PYEOF'
import sys, torch
if not torch.cuda.is_available():
    sys.exit("error: no CUDA GPU visible to torch; this check needs one (the default tests run on CPU: make test; "
             "scripts/gpu_check.sh --smoke checks the script on CPU)")
print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)
PYEOF
fi
mkdir -p "$OUT"

if [ $SMOKE = 0 ]; then
  echo "== 1. default test suite with the policy on CUDA"
  LEROBOT_WORLD_TEST_DEVICE=cuda .venv/bin/pytest -m "not slow" -q -p no:cacheprovider | tee "$OUT/tests.log" | tail -3
else
  echo "== 1. (smoke: the default test suite is not rerun)"
fi

echo "== 2. short training of C (device $DEVICE, mixed precision $AMP), LIBERO-shaped data ($SIZE px, two cameras)"
rm -rf "$OUT/data" "$OUT/tokens" "$OUT/train_C"
$PY -c "from lerobot_world.toy_dataset import make_toy_dataset; make_toy_dataset('$OUT/data', episodes_per_task=$EPISODES, image_size=$SIZE)" >/dev/null 2>&1
.venv/bin/lerobot-world tokenize --dataset.repo_id=local/toy_libero --dataset.root="$OUT/data" \
    --vocab_size=16 --eval_split=0.1 --num_workers=$WORKERS --output_dir="$OUT/tokens" 2>&1 | grep -E "^  encode|written" | tee "$OUT/tokenize.log"
start=$(date +%s)
.venv/bin/lerobot-train --policy.type=world_vla --policy.variant=C --policy.world_tokens="$OUT/tokens" \
    --policy.world_vocab_size=16 --policy.pretrained_backbone_weights=null \
    --dataset.repo_id=local/toy_libero --dataset.root="$OUT/data" --dataset.eval_split=0.1 \
    --policy.device=$DEVICE --policy.use_amp=$AMP --policy.push_to_hub=false --wandb.enable=false \
    --steps=$STEPS --batch_size=$BATCH --log_freq=$(( STEPS / 5 > 0 ? STEPS / 5 : 1 )) --save_freq=$SAVE --num_workers=$WORKERS \
    --output_dir="$OUT/train_C" 2>&1 | grep -E "step:|Effective|End of training" | tee "$OUT/train.log"
echo "train wall time: $(( $(date +%s) - start )) s for $STEPS steps (includes start-up)"
test -f "$OUT/train_C/checkpoints/last/pretrained_model/model.safetensors" || { echo "error: training wrote no checkpoint" >&2; exit 1; }
grep -q "world_ce" "$OUT/train.log" || { echo "error: the training log has no world_ce metric" >&2; exit 1; }

echo "== 3. tokenizer benchmark"
$PY scripts/bench_tokenizer.py "${BENCH[@]}" --json "$OUT/bench_tokenizer.json" 2>&1 \
    | grep -E "^(encode|tokenize encode stage|k-means fit)" | tee "$OUT/bench_tokenizer.log"
echo "gpu_check done: logs and bench_tokenizer.json in $OUT"
