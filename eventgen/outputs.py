"""Claiming an output before writing it: one writer per path, no leftovers, room to write.

A file or dataset directory ``out`` is written by one process at a time. The writer claims it
with an exclusive ``flock`` on a lock file beside it, ``.out.lock``, held as long as it writes:
a second writer to the same path (a second run, or a ``--resume`` of a run still going) is
refused at once instead of replacing or deleting the first one's work. The lock belongs to the
open file, so the kernel releases it when its process dies in any way; a lock file left by a
killed process claims nothing, and the next writer takes it over. A writer that ends normally
removes it.

Holding the claim also makes the temporary files of earlier writers of the same path
(``.out.<pid>.tmp``) safe to remove: their processes are gone, or they would hold the claim.

:func:`check_room` refuses, before any work, a run whose events could never fit on the disk
or in memory.
"""

from __future__ import annotations

import fcntl
import glob
import os
import shutil
from pathlib import Path
from types import TracebackType

from eventgen.errors import OutputError

#: Fewest bytes a float32 value of generated events takes in any output: 1/8 of its raw 4 bytes.
#: zstd keeps them at ~65% of their raw size (72 of 112 bytes per ttbar event).
MIN_BYTES_PER_VALUE = 0.5


def lock_path(path: Path) -> Path:
    """The lock file that claims ``path``: ``.NAME.lock`` beside it."""
    return path.with_name(f".{path.name}.lock")


class OutputClaim:
    """An exclusive claim on the output ``path`` (a file or a dataset directory), for one writer at a time.

    ``acquire()`` (or entering the ``with`` block) takes it or raises :class:`OutputError`
    naming the process that holds it; ``release()`` (or leaving the block) gives it back and
    removes the lock file. Its folder must exist.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock = lock_path(self.path)
        self._fd: int | None = None

    def acquire(self) -> OutputClaim:
        while self._fd is None:
            try:
                fd = os.open(self.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise OutputError(
                    f"cannot claim output {str(self.path)!r}: {exc.strerror} ({str(self.lock)!r})"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                owner = _read_owner(fd)
                os.close(fd)
                raise OutputError(
                    f"output {str(self.path)!r} is being written by another process{owner}; "
                    "wait until it ends, or choose another name"
                ) from None
            if _same_file(fd, self.lock):
                self._fd = fd
            else:  # its last holder removed the file after we opened it: claim the current one
                os.close(fd)
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.lock.unlink(missing_ok=True)  # while locked: nobody else can be holding this file
        finally:
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def remove_stale_temporary_files(self) -> list[Path]:
        """Remove the temporary files ``.NAME.<pid>.tmp`` that killed writers of the path left; returns them.

        Only while the claim is held: then no live process is writing them.
        """
        assert self.held
        pattern = f".{glob.escape(self.path.name)}.*.tmp"
        stale = [p for p in self.path.parent.glob(pattern) if p.name[len(self.path.name) + 2 : -4].isdigit()]
        for p in stale:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        return stale

    def __enter__(self) -> OutputClaim:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    fst = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)


def _read_owner(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (pid {text})" if text.isdigit() else ""


def format_bytes(n: float) -> str:
    """``n`` bytes in the largest unit that keeps it >= 1 (``"1.2 TB"``)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError  # unreachable


def check_room(n_events: int, n_columns: int, folder: Path, what: str = "the output") -> None:
    """Refuse a run of ``n_events`` events of ``n_columns`` float32 columns that cannot fit in ``folder``.

    The bound is :data:`MIN_BYTES_PER_VALUE` per value, below what any compression reaches on
    generated events, so a run refused here could never finish.
    """
    need = n_events * n_columns * MIN_BYTES_PER_VALUE
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # the folder is checked (and named in the error) where it is opened
    if need > free:
        raise OutputError(
            f"{n_events} events of {n_columns} columns cannot fit: {what} would take at least "
            f"{format_bytes(need)} even compressed ({n_columns * 4} bytes per event raw), and "
            f"{str(folder)!r} has {format_bytes(free)} free; generate fewer events or free some space"
        )


def physical_memory() -> int:
    """Bytes of memory of this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
