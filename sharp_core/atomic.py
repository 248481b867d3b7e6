"""Write files so that readers only ever see a complete file (or none): temp name, then rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

__all__ = ["atomic_target", "atomic_targets", "atomic_write"]


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in `path`'s folder for a writer that wants a file name; on success it
    replaces `path`, on any error it is removed. Permissions are those a plain `open()` would give
    (mkstemp's are owner-only)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    except OSError as exc:
        raise _naming(exc, path) from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and tmp in str(exc):
            raise _naming(exc, path) from None
        raise


def _naming(exc: OSError, path: Path) -> OSError:
    """The same kind of OSError, naming the file the user asked for instead of our temporary one."""
    reason = exc.strerror or str(exc)
    if isinstance(exc, (FileExistsError, NotADirectoryError)) and not path.parent.is_dir():
        reason = f"{reason} (a part of {path.parent} is a file, not a folder)"
    return type(exc)(exc.errno, f"Cannot write {path}: {reason}")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """`atomic_target` for writers that want an open binary file."""
    with atomic_target(path) as tmp, open(tmp, "wb") as f:
        yield f


@contextlib.contextmanager
def atomic_targets(paths: list[str | os.PathLike]) -> Iterator[list[Path]]:
    """`atomic_target` for a set of files written together (e.g. an index file and the files it
    names): yields one temporary path per entry of `paths`; on success they replace their targets
    in the order given (so put the file that names the others last), on any error all are removed
    and no target is touched."""
    with contextlib.ExitStack() as stack:
        temps = [stack.enter_context(atomic_target(p)) for p in reversed(list(paths))]  # exits run LIFO
        yield temps[::-1]
