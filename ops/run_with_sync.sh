#!/usr/bin/env bash
# Run a training command with its output directory continuously copied to an rclone remote.
#   ops/run_with_sync.sh OUTPUT_DIR REMOTE [INTERVAL_S] -- lerobot-train --output_dir=OUTPUT_DIR ...
# e.g. ops/run_with_sync.sh outputs/train/C_s0 gdrive:lerobot/C_s0 120 -- lerobot-train ...
# Resume after a crash:  python ops/sync_run.py resume --src=OUTPUT_DIR --dst=REMOTE
set -euo pipefail
if [[ $# -lt 4 ]]; then
  echo "usage: $0 OUTPUT_DIR REMOTE [INTERVAL_S] -- COMMAND..." >&2
  exit 2
fi
src=$1 dst=$2; shift 2
interval=60
if [[ $1 != "--" ]]; then interval=$1; shift; fi
if [[ $1 != "--" ]]; then echo "error: expected -- before the command, got '$1'" >&2; exit 2; fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
py=${PYTHON:-$here/../.venv/bin/python}
[[ -x $py ]] || py=python3
# exec: signals to this script go straight to the watcher, which forwards them and flushes.
exec "$py" "$here/sync_run.py" run --src="$src" --dst="$dst" --interval="$interval" "$@"
