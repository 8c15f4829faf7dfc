"""Offline LIBERO assets: verification against upstream git blob hashes, and a prompt-free import.

Altered/missing files are tested on a temporary tree of symlinks to the real files (one entry
replaced by an altered copy or removed): the installed assets are never modified.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eval_sim import libero_assets as la

REPO = Path(__file__).resolve().parents[1]


def _installed_source() -> Path:
    dirs = la.wheel_assets_dirs()
    if dirs:
        return dirs[0]
    local = la.hf_libero_local_assets()
    if local.exists():
        return local
    pytest.skip("no LIBERO assets installed (run `make setup`)")


@pytest.fixture(scope="module")
def entries():
    return la.load_manifest()


@pytest.fixture
def link_tree(tmp_path, entries):
    """A throwaway asset tree whose files are symlinks to the installed (read-only to us) assets."""
    src = _installed_source().resolve()
    root = tmp_path / "assets"
    for e in entries:
        (root / e.path).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(src / e.path, root / e.path)
    return root


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    # Stamps of temp trees go to a temp cache, so tests neither read nor litter the user's.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_manifest_is_upstream_shape(entries):
    assert len(entries) > 500
    assert all(len(e.sha1) == 40 for e in entries)
    assert any(e.path.startswith("scenes/") for e in entries)
    assert sum(e.size is None for e in entries) < len(entries) // 10  # only the big files lack a size


def test_git_blob_sha1_matches_git(tmp_path):
    f = tmp_path / "x.txt"
    f.write_bytes(b"hello\n")
    # `git hash-object` of "hello\n"
    assert la.git_blob_sha1(f) == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_installed_assets_verify(entries):
    info = la.verify_tree(_installed_source(), entries, use_cache=False)
    assert info["files"] == len(entries) and not info["cached"]
    again = la.verify_tree(_installed_source(), entries, use_cache=True)
    assert again["cached"]


def test_altered_byte_names_the_file(link_tree, entries):
    la.verify_tree(link_tree, entries, use_cache=True)  # also leaves a stamp that must not be trusted
    victim = next(e for e in entries if e.path.endswith(".xml") and (e.size or 0) > 100)
    path = link_tree / victim.path
    data = bytearray(path.read_bytes())
    path.unlink()
    data[len(data) // 2] ^= 0x01  # same size, one bit changed
    path.write_bytes(bytes(data))
    with pytest.raises(la.LiberoAssetsError, match=victim.path.replace(".", r"\.")) as exc:
        la.verify_tree(link_tree, entries, use_cache=True)
    assert "altered" in str(exc.value)


def test_size_change_and_missing_file_named(link_tree, entries):
    sized = next(e for e in entries if e.size is not None and e.size > 10)
    p = link_tree / sized.path
    content = p.read_bytes()
    p.unlink()
    p.write_bytes(content + b"\n")
    with pytest.raises(la.LiberoAssetsError, match="expected"):
        la.verify_tree(link_tree, entries)
    p.unlink()
    p.write_bytes(content)
    gone = entries[-1]
    (link_tree / gone.path).unlink()
    with pytest.raises(la.LiberoAssetsError, match=f"{gone.path}.*missing|missing.*{gone.path}") as exc:
        la.verify_tree(link_tree, entries)
    assert str(exc.value).count("\n") == 0


def test_cli_verify_reports_the_file(link_tree, entries, capsys):
    victim = entries[0]
    (link_tree / victim.path).unlink()
    with pytest.raises(SystemExit) as exc:
        la.main(["verify", f"--assets_dir={link_tree}"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and victim.path in err and err.startswith("error:")


def test_bad_manifest_line_is_one_error(tmp_path):
    m = tmp_path / "m.tsv"
    m.write_text("# header\nfoo.xml\t12\n")
    with pytest.raises(la.LiberoAssetsError, match="m.tsv:2"):
        la.load_manifest(m)


def _run(code: str, env: dict, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=timeout, env=env, cwd=REPO,
    )


@pytest.mark.skipif(importlib.util.find_spec("libero") is None,
                    reason="LIBERO (the project's `libero` extra) is not installed, e.g. on a GPU node set up for training only")
def test_setup_then_import_never_prompts(tmp_path):
    """A fresh LIBERO_CONFIG_PATH: without setup the import would prompt; after setup it imports silently."""
    env = {**os.environ, "LIBERO_CONFIG_PATH": str(tmp_path / "libero_cfg"), "HF_HUB_OFFLINE": "1"}
    env["XDG_CACHE_HOME"] = os.environ.get("XDG_CACHE_HOME", str(tmp_path / "cache"))
    before = _run("import libero.libero", env)
    assert before.returncode != 0 and "EOF" in before.stderr  # proves the test can fail: it prompted
    setup = subprocess.run(
        [sys.executable, "-m", "eval_sim.libero_assets", "setup", "--quiet"], stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=120, env=env, cwd=REPO,
    )
    assert setup.returncode == 0, setup.stderr
    assert (tmp_path / "libero_cfg" / "config.yaml").is_file()
    after = _run(
        "import libero.libero as L; from libero.libero import get_libero_path; import os;"
        "p = L.get_assets_path(); assert os.path.isfile(os.path.join(p, 'scenes', 'libero_base_style.xml')) "
        "or os.path.isdir(os.path.join(p, 'scenes')), p;"
        "assert os.path.isdir(get_libero_path('bddl_files')); print(p)",
        env,
    )
    assert after.returncode == 0, after.stderr
    assert "Do you want" not in after.stdout
    # Second setup is idempotent and quick (stamp), and ensure_libero_ready() agrees.
    again = _run("import time; t=time.time(); from eval_sim.libero_assets import ensure_libero_ready as e; "
                 "p = e(); print(p, time.time()-t)", env)
    assert again.returncode == 0, again.stderr
    assert float(again.stdout.split()[-1]) < 1.0
