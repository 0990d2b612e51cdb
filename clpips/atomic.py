"""Atomic file writes (a temporary file beside the target, then a rename: a crash leaves the old file or
nothing, never half a file), strict JSON, and checked cache entries (a sha256 beside the entry, verified
on read: a bad entry is named in one warning, removed and rebuilt).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from filelock import FileLock


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the mode a plain open() would
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def torch_bytes(obj: Any) -> bytes:
    """``torch.save(obj)`` as bytes, through a buffer: a file save records the file's name inside the archive,
    so a temporary name gave different bytes every run; through a buffer the same object gives the same bytes.
    """
    import torch  # loaded here: clpips.datasets and clpips.stats write through this module without torch
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``torch_bytes(obj)`` to ``path`` atomically."""
    return write_bytes(path, torch_bytes(obj))


def json_ready(obj: Any) -> Any:
    """``obj`` with NaN/inf as None and numpy/torch scalars and arrays as Python values."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy/torch scalars and arrays
        return json_ready(obj.tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return str(obj)


def json_text(obj: Any, sort_keys: bool = False) -> str:
    """Strict JSON (RFC 8259): missing or non-finite numbers become ``null``, never bare ``NaN``."""
    return json.dumps(json_ready(obj), indent=2, sort_keys=sort_keys, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike, obj: Any, sort_keys: bool = False) -> Path:
    """Write ``obj`` as strict JSON (:func:`json_text`) atomically."""
    return write_text(path, json_text(obj, sort_keys=sort_keys))


class CacheEntryError(ValueError):
    """A cache entry is missing its checksum or does not match it."""


def checksum_path(path: str | os.PathLike) -> Path:
    """Where the sha256 of a checked entry is recorded: ``entry.pt`` -> ``entry.pt.sha256``."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def write_checked(path: str | os.PathLike, data: bytes) -> Path:
    """Write a cache entry and the sha256 of its bytes beside it (both atomically)."""
    write_bytes(path, data)
    write_text(checksum_path(path), hashlib.sha256(data).hexdigest() + "\n")
    return Path(path)


def read_checked(path: str | os.PathLike) -> bytes:
    """The bytes of an entry written by :func:`write_checked`, verified; a :class:`CacheEntryError` naming it
    when the checksum is missing or differs.
    """
    path = Path(path)
    data = path.read_bytes()
    try:
        recorded = checksum_path(path).read_text().strip()
    except FileNotFoundError:
        raise CacheEntryError(f"{path}: cache entry has no recorded checksum") from None
    if (got := sha256_mismatch(data, recorded)) is not None:
        raise CacheEntryError(f"{path}: cache entry is corrupt (sha256 {got[:12]}…, recorded {recorded[:12]}…)")
    return data


def sha256_mismatch(data: bytes, expected: str) -> str | None:
    """None when ``data``'s sha256 is ``expected``, else the sha256 it has."""
    got = hashlib.sha256(data).hexdigest()
    return None if got == expected.strip().lower() else got


def remove_entry(path: str | os.PathLike) -> None:
    """Delete a cache entry and its checksum (missing files are fine)."""
    Path(path).unlink(missing_ok=True)
    checksum_path(path).unlink(missing_ok=True)


def read_entry(path: str | os.PathLike, parse: Callable[[bytes], Any], valid: Optional[Callable[[Any], bool]] = None,
               holds: str = "what it should", category: type[Warning] = UserWarning,
               remove: Callable[[Path], None] = remove_entry, stacklevel: int = 2) -> Any:
    """``parse`` of a checked entry's bytes, verified (checksum, then ``valid``, ``holds`` saying what it
    should hold). A bad entry (missing, unchecked, truncated, altered, unparsable) is named in one warning
    of ``category``, removed with ``remove(path)`` and None returned, so the caller rebuilds it.
    """
    path = Path(path)
    try:
        obj = parse(read_checked(path))
        if valid is not None and not valid(obj):
            raise CacheEntryError(f"{path}: cache entry does not hold {holds}")
    except Exception as err:  # a checksum mismatch, a missing file, or bytes the parser cannot read
        if isinstance(err, FileNotFoundError):
            reason = f"{path}: cache entry is missing"
        elif isinstance(err, CacheEntryError):
            reason = str(err)
        else:
            reason = f"{path}: unreadable cache entry ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
        with contextlib.suppress(OSError):
            remove(path)
        warnings.warn(f"{reason}; removed it, rebuilding", category, stacklevel=stacklevel + 1)
        return None
    return obj


@contextlib.contextmanager
def exclusive(lock_path: str | os.PathLike) -> Iterator[bool]:
    """Hold an exclusive file lock for the block, so that processes computing the same cached thing do it
    once (the second waits, then finds it). Yields False, unlocked, when the folder cannot be written.
    """
    try:
        Path(lock_path).parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(lock_path))
        lock.acquire()
    except OSError:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def read_or_compute(lock_path: str | os.PathLike, read: Callable[[], Any], compute: Callable[[], Any],
                    write: Callable[[Any], Any]) -> Any:
    """The package's one way to cache a computed thing: what ``read()`` finds (None: nothing usable), else
    ``compute()``'s value, stored by ``write(value)``. Under the lock ``lock_path`` (:func:`exclusive`) it reads
    again before computing, so processes side by side compute a thing once (the second waits, then reads).
    An OSError from ``write`` (a read-only cache) is ignored: the value is still returned."""
    if (value := read()) is not None:
        return value
    with exclusive(lock_path):
        if (value := read()) is not None:
            return value
        value = compute()
        with contextlib.suppress(OSError):
            write(value)
    return value
