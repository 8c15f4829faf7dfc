"""Outputs that appear whole or not at all: a command writes into a scratch directory beside its output and
moves it into place only when everything is written, so an interrupted run never leaves a result that looks
complete (DESIGN §7). One implementation for every command that writes a result directory or file.
"""

import os
import shutil
import tempfile
from pathlib import Path


def replace_path(src: Path, dest: Path) -> None:
    """Move the finished `src` to `dest` (same filesystem), replacing whatever was at `dest`."""
    if dest.is_dir() and not dest.is_symlink():
        shutil.rmtree(dest)
    elif dest.exists() or dest.is_symlink():
        dest.unlink()
    os.replace(src, dest)


class staged_dir:  # noqa: N801 - used like a function: `with staged_dir(out) as tmp:`
    """`with staged_dir(out) as tmp:` write into `tmp`; on a clean exit `tmp` replaces `out`, on an error (or
    after `discard()`) it is removed and `out` is left as it was."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.path: Path | None = None
        self._discard = False

    def __enter__(self) -> "staged_dir":
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.partial-", dir=self.out.parent))
        return self

    def discard(self) -> None:
        """Keep `out` as it is (e.g. it already holds an identical result); the scratch copy is dropped."""
        self._discard = True

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None and not self._discard:
                replace_path(self.path, self.out)
        finally:
            if self.path.exists():
                shutil.rmtree(self.path, ignore_errors=True)


def write_text_atomic(path: Path, text: str) -> None:
    """Write a text file through a temporary sibling, so readers see the old or the new content, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)
