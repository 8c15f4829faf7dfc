#!/usr/bin/env bash
# System libraries the install needs (EGL/GL for MuJoCo rendering, glib for OpenCV; cmake 3 / g++ / make
# for hf-libero's egl_probe). Installs them with apt when run as root, otherwise names what is missing.
set -euo pipefail
missing=()
for lib in libEGL.so.1 libGL.so.1 libglib-2.0.so.0; do
  ldconfig -p 2>/dev/null | grep -q "$lib" || missing+=("$lib")
done
for tool in g++ make cmake; do command -v "$tool" >/dev/null || missing+=("$tool"); done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing system packages for: ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    libegl1 libgl1 libglib2.0-0 g++ make cmake >/dev/null
else
  echo "error: missing system libraries/tools: ${missing[*]}; install libegl1 libgl1 libglib2.0-0 g++ make cmake (Debian/Ubuntu names)" >&2
  exit 1
fi
