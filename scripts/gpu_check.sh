#!/usr/bin/env bash
# GPU check: on a machine with a CUDA GPU, run the default tests on CUDA, a short real training of
# world_vla C with mixed precision on a LIBERO-shaped dataset, and the tokenizer benchmark; print numbers.
#   make setup && scripts/gpu_check.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=${1:-outputs/gpu_check}
export HF_HUB_OFFLINE=1 WANDB_MODE=offline MUJOCO_GL=egl PYOPENGL_PLATFORM=egl
$PY - <<'PYEOF'
import sys, torch
if not torch.cuda.is_available():
    sys.exit("error: no CUDA GPU visible to torch; this check needs one (the default tests run on CPU: make test)")
print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)
PYEOF
mkdir -p "$OUT"
echo "== 1. default test suite with the policy on CUDA"
LEROBOT_WORLD_TEST_DEVICE=cuda .venv/bin/pytest -m "not slow" -q -p no:cacheprovider | tee "$OUT/tests.log" | tail -3

echo "== 2. short training of C, mixed precision, LIBERO-shaped data (128 px, two cameras)"
rm -rf "$OUT/data" "$OUT/tokens" "$OUT/train_C"
$PY -c "from lerobot_world.toy_dataset import make_toy_dataset; make_toy_dataset('$OUT/data', episodes_per_task=10, image_size=128)"
.venv/bin/lerobot-world tokenize --dataset.repo_id=local/toy_libero --dataset.root="$OUT/data" \
    --vocab_size=64 --eval_split=0.1 --output_dir="$OUT/tokens"
start=$(date +%s)
.venv/bin/lerobot-train --policy.type=world_vla --policy.variant=C --policy.world_tokens="$OUT/tokens" \
    --dataset.repo_id=local/toy_libero --dataset.root="$OUT/data" --dataset.eval_split=0.1 \
    --policy.device=cuda --policy.use_amp=true --policy.push_to_hub=false --wandb.enable=false \
    --steps=500 --batch_size=32 --log_freq=100 --save_freq=500 --num_workers=4 \
    --output_dir="$OUT/train_C" 2>&1 | grep -E "step:|Effective|End of training" | tee "$OUT/train.log"
echo "train wall time: $(( $(date +%s) - start )) s for 500 steps"

echo "== 3. tokenizer benchmark (full scale: 273,465 x 768, V=1024)"
$PY scripts/bench_tokenizer.py | tee "$OUT/bench_tokenizer.log"
