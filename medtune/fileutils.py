"""File helpers: atomic writes and strict text reading.

Atomic writes build the output under a hidden temporary name beside the target,
``.NAME.HOST-PID.XXXXXXXX.tmp`` (a directory for :func:`atomic_dir`), and rename it into place only
when the block succeeds; an exception or a SIGINT/SIGTERM removes it. A process killed outright
(SIGKILL, power loss) cannot clean up, so every atomic write first removes the temporaries of the same
target that a dead process of this host left behind (its PID is in the name and no longer alive):
partial outputs, which may hold note text, do not pile up. Temporaries of live processes, of other
hosts and of older medtune versions (no PID in the name) are left alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import IO, Iterator

from medtune.errors import DataFormatError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", socket.gethostname()).strip("-") or "host"


def _temp_prefix(path: Path) -> str:
    """``.NAME.HOST-PID.``: the start of this process's temporaries for ``path``."""
    return f".{path.name}.{_host()}-{os.getpid()}."


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except OSError:
        return True
    return True


def stale_temporaries(path: str | Path) -> list[Path]:
    """Temporaries of ``path`` left by a dead process of this host (see the module docstring)."""
    path = Path(path)
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.{re.escape(_host())}-(\d+)\.[A-Za-z0-9_]+\.tmp$")
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return []
    stale = []
    for entry in entries:
        match = pattern.match(entry.name)
        if match and not _pid_alive(int(match.group(1))):
            stale.append(Path(entry.path))
    return sorted(stale)


def remove_stale_temporaries(path: str | Path) -> int:
    """Remove :func:`stale_temporaries` of ``path``; returns how many were removed."""
    removed = 0
    for tmp in stale_temporaries(path):
        try:
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp)
            else:
                tmp.unlink()
            removed += 1
        except OSError:
            pass  # gone already, or not ours to remove: never fail a write over it
    return removed


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path``, moved into place only when the block succeeds.

    A crash or an exception half-way leaves the previous file (or nothing) behind, never a
    truncated output. Stale temporaries of ``path`` from dead processes are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; it replaces ``path`` only on success."""
    with atomic_path(path) as tmp:
        kwargs = {} if "b" in mode else {"encoding": encoding, "newline": ""}
        with open(tmp, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a directory under a temporary name and rename it into place only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            backup = path.with_name(f".{path.name}.old")
            if backup.exists():
                shutil.rmtree(backup)
            os.replace(path, backup)
            os.replace(tmp, path)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_text(path: str | Path) -> str:
    """Read a UTF-8 file; a file in another encoding gets an error naming the file and the line."""
    path = Path(path)
    if not path.exists():
        raise DataFormatError("file not found", path=path, fix="check the path (relative paths are "
                              "resolved from the current directory)")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataFormatError(
            f"not valid UTF-8 (byte offset {err.start})", path=path, line=line,
            fix="re-encode the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 IN > OUT`",
        ) from None


def iter_lines(path: str | Path, *, keepends: bool = False) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` of a UTF-8 file, streaming; newlines stripped unless ``keepends``.

    Non-UTF-8 bytes raise ``DataFormatError`` naming the file and line.
    """
    path = Path(path)
    if not path.exists():
        raise DataFormatError("file not found", path=path, fix="check the path")
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DataFormatError(
                    "not valid UTF-8", path=path, line=number,
                    fix="re-encode the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 IN > OUT`",
                ) from None
            if number == 1 and line.startswith("\ufeff"):
                line = line[1:]
            yield number, line if keepends else line.rstrip("\r\n")
