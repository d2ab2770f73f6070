"""Index folders that several kefu processes can share under one `index_dir`.

A `kefu serve`, a `kefu faq ask`, two shops or a restart that overlaps the old process
may all use one `index_dir`. Three rules keep each one's live index from vanishing:

* Build aside, publish atomically. A folder is written only inside a private staging
  folder (`.staging-<name>-<pid>-<random>`), then renamed in one step to its content
  name. A published folder is never written again; whoever finds it complete reuses it,
  and a builder that loses the race to publish the same name drops its copy.
* Hold what you use. A process using a folder keeps a shared `flock` on the folder's
  `hold.lock` until it closes it. The lock file moves with the rename, so a builder's
  hold on its staging folder becomes its hold on the published folder, with no gap.
  The kernel drops the locks of a process that exits or is killed.
* Delete only what nobody holds. A sweep deletes a folder only while it has an
  exclusive, non-blocking lock on its `hold.lock`, and first renames it to a unique
  `.trash-` name, so nobody can find it half deleted. Whoever takes a lock checks
  afterwards that the lock file is still the one at the folder's path (the folder may
  have been deleted while it waited), and starts over when it is not.

A folder without a `hold.lock` (one from before these rules, or one in the instant
between its creation and its lock) is swept only once it is `LOCKLESS_GRACE_SECONDS`
old. `flock` works between processes of one machine; it does not hold across machines
that mount `index_dir` over NFS.

Every function blocks (file I/O, and `hold` may wait while a sweep deletes the folder).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from bot.errors import KefuError

log = logging.getLogger(__name__)

HOLD_FILE = "hold.lock"
STAGING_PREFIX = ".staging-"
TRASH_PREFIX = ".trash-"
LOCKLESS_GRACE_SECONDS = 600.0
_STAGE_ATTEMPTS = 3


class IndexFolderError(KefuError):
    """An index folder cannot be created, published or used; names the folder."""


@dataclass
class FolderHold:
    """A shared lock on a folder's `hold.lock`: while it is held no sweep deletes the folder."""

    folder: Path
    fd: int | None

    @property
    def held(self) -> bool:
        return self.fd is not None

    def release(self) -> None:
        """Let sweeps delete the folder again; safe to call twice."""
        if self.fd is not None:
            os.close(self.fd)  # closing the last descriptor drops the flock
            self.fd = None


def hold(folder: Path) -> FolderHold | None:
    """A shared hold on a published folder; None when it is absent or was deleted meanwhile."""
    lock_path = folder / HOLD_FILE
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # waits only while a sweep is deleting this folder
        if _same_file(fd, lock_path):
            return FolderHold(folder, fd)
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return None


def stage(root: Path, name: str) -> FolderHold:
    """A new, held, private staging folder under `root` for a folder that will be called `name`."""
    root.mkdir(parents=True, exist_ok=True)
    for _ in range(_STAGE_ATTEMPTS):
        staging = root / f"{STAGING_PREFIX}{name}-{os.getpid()}-{secrets.token_hex(4)}"
        staging.mkdir()
        lock_path = staging / HOLD_FILE
        fd = os.open(lock_path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_SH)
        if _same_file(fd, lock_path):
            return FolderHold(staging, fd)
        # A sweep took the lock file in the instant between its creation and our lock.
        os.close(fd)
        log.warning("index_folders.staging_swept_before_lock folder=%s", staging)
    raise IndexFolderError(f"{root}: could not lock a staging folder after {_STAGE_ATTEMPTS} attempts")


def publish(staging: FolderHold, target: Path) -> bool:
    """Rename a complete staging folder to `target`, keeping the hold; False when `target` already exists.

    On False the staging folder is deleted and its hold released: someone published
    the same name first, and published folders are never replaced.
    """
    if not staging.held:
        raise IndexFolderError(f"{staging.folder}: publishing a staging folder that is not held")
    try:
        os.rename(staging.folder, target)
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
        discard(staging)
        return False
    staging.folder = target
    return True


def discard(staging: FolderHold) -> None:
    """Delete this process's own staging folder (never a published one) and release it."""
    if not staging.folder.name.startswith(STAGING_PREFIX):
        raise IndexFolderError(f"{staging.folder}: only a staging folder can be discarded")
    _rmtree(staging.folder)
    staging.release()


def remove_if_unheld(folder: Path) -> bool:
    """Delete `folder` when no process holds it; True when it was deleted here."""
    lock_path = folder / HOLD_FILE
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return _remove_lockless(folder)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live process holds it
        if not _same_file(fd, lock_path):
            return False  # deleted (and maybe published anew) while we opened it
        trash = _to_trash(folder)
        if trash is None:
            return False
        _rmtree(trash)
        return True
    finally:
        os.close(fd)


def sweep(root: Path) -> list[Path]:
    """Delete every folder under `root` that no live process holds: old versions, abandoned staging."""
    if not root.is_dir():
        return []
    removed = [folder for folder in sorted(root.iterdir()) if folder.is_dir() and remove_if_unheld(folder)]
    for folder in removed:
        log.info("index_folders.removed folder=%s", folder)
    return removed


def _remove_lockless(folder: Path) -> bool:
    try:
        age = time.time() - folder.stat().st_mtime
    except FileNotFoundError:
        return False
    if age < LOCKLESS_GRACE_SECONDS:
        return False  # maybe being created this instant, or a sweep is deleting it
    trash = _to_trash(folder)
    if trash is None:
        return False
    _rmtree(trash)
    return True


def _to_trash(folder: Path) -> Path | None:
    trash = folder.with_name(f"{TRASH_PREFIX}{os.getpid()}-{secrets.token_hex(4)}")
    try:
        os.rename(folder, trash)
    except FileNotFoundError:
        return None  # another sweep got there first
    return trash


def _rmtree(folder: Path) -> None:
    def on_error(func, path, exc_info) -> None:
        if not isinstance(exc_info[1], FileNotFoundError):  # another sweep removing the same trash
            log.warning("index_folders.remove_failed path=%s error=%s", path, exc_info[1])

    shutil.rmtree(folder, onerror=on_error)


def _same_file(fd: int, path: Path) -> bool:
    """Whether the open lock file is still the one at `path` (not deleted or replaced since)."""
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (opened.st_dev, opened.st_ino)


def write_atomically(path: Path, data: str | bytes) -> None:
    """Several kefu processes may share the index folder: each writes a file of its own aside, then
    renames it over `path`, so a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    os.replace(temporary, path)
