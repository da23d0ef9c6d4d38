"""Atomic file writes: a reader never sees half a file under the final name."""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

PathLike = str | os.PathLike


#: A temporary file older than this is left over from an interrupted write even when
#: its writer cannot be checked (another machine, Windows, an older name format).
STALE_TEMPORARY_AGE = 24 * 3600.0


def process_alive(pid: int) -> bool | None:
    """Whether process ``pid`` of this machine runs; ``None`` when it cannot be told.

    POSIX only: on Windows ``os.kill(pid, 0)`` would *terminate* the process, so it is
    never probed there.
    """
    if os.name != "posix":
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    except OSError:
        return None
    return True


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


def _remove_stale_temporaries(path: Path) -> None:
    """Delete temporaries of ``path`` left by writes that were killed midway.

    A write that raises removes its own temporary; one killed outright (SIGKILL, power
    loss) cannot. Its file ``.<name>.<pid>.<random>.tmp`` is removed here once its
    process is gone (checked on POSIX) or it is older than
    :data:`STALE_TEMPORARY_AGE`. A temporary of a write still running is kept.
    """
    now = time.time()
    for candidate in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        middle = candidate.name[len(path.name) + 2 : -len(".tmp")]
        pid_text = middle.split(".", 1)[0]
        try:
            age = now - candidate.stat().st_mtime
        except OSError:
            continue  # removed meanwhile
        dead = False
        if pid_text.isdigit() and "." in middle and int(pid_text) != os.getpid():
            dead = process_alive(int(pid_text)) is False
        if dead or age > STALE_TEMPORARY_AGE:
            candidate.unlink(missing_ok=True)


@contextlib.contextmanager
def _temporary_sibling(path: Path) -> Iterator[Path]:
    # Same directory as the target, so the final rename never crosses file systems
    # (rename is atomic only within one). The writer's pid is in the name, so a later
    # write can tell a killed writer's leftover from a running one's file.
    _remove_stale_temporaries(path)
    temporary: Path | None = None
    try:
        handle, name = tempfile.mkstemp(
            prefix=_temporary_prefix(path), suffix=".tmp", dir=path.parent
        )
        temporary = Path(name)
        os.close(handle)
        # mkstemp creates the file private (0600); a result file should get the
        # permissions any other new file gets, so a BI service or a colleague can read it.
        os.chmod(temporary, 0o666 & ~_current_umask())
        yield temporary
    finally:
        if temporary is not None:
            temporary.unlink(missing_ok=True)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary_path)``, flush it to disk, then rename it to ``path``.

    If ``write`` raises (an error, ``KeyboardInterrupt``), ``path`` keeps its previous
    content (or stays absent) and the temporary file is removed at once. If the process
    is killed midway, ``path`` is untouched too, and the next write to ``path`` removes
    the temporary file the killed one left.
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
