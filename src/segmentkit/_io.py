"""Atomic file writes: a reader never sees half a file under the final name."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

PathLike = str | os.PathLike


@contextlib.contextmanager
def _temporary_sibling(path: Path) -> Iterator[Path]:
    # Same directory as the target, so the final rename never crosses file systems
    # (rename is atomic only within one).
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    # mkstemp creates the file private (0600); a result file should get the permissions
    # any other new file gets, so a BI service or a colleague can read it.
    os.chmod(temporary, 0o666 & ~_current_umask())
    try:
        yield temporary
    finally:
        temporary.unlink(missing_ok=True)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary_path)``, flush it to disk, then rename it to ``path``.

    If ``write`` raises (or the process dies), ``path`` keeps its previous content
    (or stays absent) and the temporary file is removed.
    """
    target = Path(path)
    if not target.parent.exists():
        msg = f"Cannot write {str(target)!r}: the folder {str(target.parent)!r} does not exist."
        raise FileNotFoundError(msg)
    with _temporary_sibling(target) as temporary:
        write(temporary)
        with open(temporary, "rb+") as stream:
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    return target
