#!/usr/bin/env bash
# Print the path of a Python >= 3.12 interpreter (LeRobot 0.6 needs it), or fail with one clear sentence.
set -euo pipefail
for cand in "${PYTHON:-}" python3.12 python3.13 python3 \
            "$HOME"/.pyenv/versions/3.12*/bin/python3.12 /root/.pyenv/versions/3.12*/bin/python3.12 \
            /usr/local/bin/python3.12 /usr/bin/python3.12; do
  [ -n "$cand" ] || continue
  exe=$(command -v "$cand" 2>/dev/null || true)
  [ -n "$exe" ] && [ -x "$exe" ] || continue
  if "$exe" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
    echo "$exe"; exit 0
  fi
done
echo "error: no Python >= 3.12 found (tried \$PYTHON, python3.12, python3.13, python3, ~/.pyenv/versions/3.12*); install Python 3.12 or set PYTHON=/path/to/python3.12" >&2
exit 1
