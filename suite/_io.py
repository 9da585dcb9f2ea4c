"""Atomic file writes: a reader never sees a half-written file, a crash leaves the old one.

Files and directories made here follow the process umask (0644 / 0755 under the usual 022, 0664 / 0775 under
a group-shared 002), as `open()` and `mkdir()` would: `tempfile` creates 0600 / 0700, which would lock a
teammate out of a shared project directory."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def umask() -> int:
    """The process umask, read without changing it where Linux tells (/proc, kernel >= 4.7)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, hence second choice)
    os.umask(old)
    return old


def mkdtemp(dir: str | os.PathLike, prefix: str) -> Path:
    """tempfile.mkdtemp with the umask's permissions (a checkpoint directory renamed into place keeps them)."""
    tmp = Path(tempfile.mkdtemp(dir=dir, prefix=prefix))
    os.chmod(tmp, 0o777 & ~umask())
    return tmp


def mkstemp(dir: str | os.PathLike, prefix: str, suffix: str = ".tmp") -> tuple[int, str]:
    """tempfile.mkstemp with the umask's permissions: the file renamed into place keeps them."""
    fd, tmp = tempfile.mkstemp(dir=dir, prefix=prefix, suffix=suffix)
    os.fchmod(fd, 0o666 & ~umask())
    return fd, tmp


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = mkstemp(path.parent, f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def append_jsonl(path: str | os.PathLike, obj: Any) -> None:
    """Append one JSON line; a line is written with one write() so a crash never splits it."""
    line = json.dumps(obj, sort_keys=True, default=_json_default) + "\n"
    with open(path, "a") as f:
        f.write(line)
        f.flush()


def follow_umask(root: str | os.PathLike) -> None:
    """Give a freshly written tree the umask's permissions: safetensors' writer creates its files 0600 and
    tempfile its directories 0700, either of which would lock a teammate out of a shared run directory."""
    mask = umask()
    root = Path(root)
    for p in [root, *root.rglob("*")]:
        if p.is_symlink():
            continue
        want = (0o777 if p.is_dir() or os.access(p, os.X_OK) and p.stat().st_mode & 0o100 else 0o666) & ~mask
        if p.stat().st_mode & 0o777 != want:
            os.chmod(p, want)


def atomic_replace_dir(tmp_dir: Path, final_dir: Path) -> None:
    """Move a fully written directory into place (with the umask's permissions); an existing one is swapped
    out, then removed."""
    follow_umask(tmp_dir)
    final_dir = Path(final_dir)
    if final_dir.exists():
        old = final_dir.with_name(f".{final_dir.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final_dir, old)
        os.replace(tmp_dir, final_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp_dir, final_dir)


def file_sha256(path: str | os.PathLike) -> str:
    """A file's sha256, read in 4 MiB blocks (a 540 MB model.safetensors hashes in about 0.5 s)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


@contextlib.contextmanager
def locked(path: str | os.PathLike):
    """An exclusive flock on `path` (created if missing) for the `with` block: one writer of a shared cache among
    concurrent cells, ranks and submitters; released when the file closes, also when the process dies."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
