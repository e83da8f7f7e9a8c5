"""The one way files are written: to a temporary file in the same directory, then ``os.replace``, so a reader
(or a crash) sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def atomic_writer(path: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """``with atomic_writer(p) as f: f.write(...)``: p appears complete when the block ends, or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        os.chmod(tmp, mode)  # mkstemp makes 0600; data and models are fine to share with the group
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    with atomic_writer(path) as out:
        out.write(payload)


def atomic_copy(source: Path, target: Path) -> None:
    with atomic_writer(target) as out, open(source, "rb") as src:
        shutil.copyfileobj(src, out)


def atomic_write_with(path: Path, write: Callable[[BinaryIO], None]) -> None:
    with atomic_writer(path) as out:
        write(out)
