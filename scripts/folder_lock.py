# Copyright (c) 2026 JCAS bundle contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""One run per output folder: an OS lock on ``<folder>/.lock`` that a killed run cannot leave stuck.

Two trainings into one ``ckpt_dir`` used to overwrite each other's ``model.pt`` without a word. The configs'
``initialize`` lists call :func:`lock_folders` after the start-up checks and before anything is written: each
folder a run writes (``ckpt_dir`` and ``output_dir`` in training, ``output_dir`` in evaluation and inference) is
held with ``fcntl.flock`` on its ``.lock`` file for the life of the process. The operating system releases the lock
when the process ends, however it ends (``SIGKILL`` included), so no stale lock is ever left to clean up; the file
itself stays, holding the last holder's process id and command. A second run into a held folder stops at once with
:class:`FolderInUseError` naming the config key, the folder and the process holding it.

Under ``torchrun`` only the process of rank 0 locks (the other ranks write nothing of their own, and must not block
it); a process that already holds a folder may lock it again (a training then an evaluation in one Python session).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO

from .config_check import ConfigError

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "FolderInUseError", "held_folders", "lock_folders", "release_folders"]

LOCK_NAME = ".lock"
logger = logging.getLogger(__name__)
_HELD: dict[Path, IO[str]] = {}  # resolved folder -> its open lock file, for the life of the process


class FolderInUseError(ConfigError):
    """A folder the run would write is held by another running process; the message names both."""


def _rank() -> int:
    """This process's rank under ``torchrun`` (``RANK``; ``torch.distributed`` is not initialised yet), else 0."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def _holder(lock_file: Path) -> str:
    """The process a lock file names (``pid 1234: command``), or what is known of it."""
    for _ in range(20):  # the holder writes its line right after taking the lock: give it a moment
        try:
            text = lock_file.read_text().strip()
        except OSError:
            text = ""
        if text:
            return text.splitlines()[0]
        time.sleep(0.05)
    return "a process that has not written its id yet"


def _acquire(key: str, folder: Path) -> IO[str]:
    folder.mkdir(parents=True, exist_ok=True)
    lock_file = folder / LOCK_NAME
    handle = open(lock_file, "a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise FolderInUseError(
            f"{key}: '{folder}' is in use by another run ({_holder(lock_file)}); wait for it to end, or give this "
            f"run another {key}"
        ) from None
    handle.seek(0)
    handle.truncate()
    argv = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]  # as typed: python -m monai.bundle ...
    command = " ".join(" ".join([os.path.basename(argv[0]), *argv[1:]]).split())  # one line
    handle.write(f"pid {os.getpid()}: {command if len(command) <= 500 else command[:500] + ' ...'}\n")
    handle.flush()
    return handle


def lock_folders(folders: Mapping[str, str | os.PathLike | None]) -> list[Path]:
    """Hold each folder of ``folders`` (config key -> folder; None skipped) for this process, creating it.

    A folder inside another one of ``folders`` is covered by that one's lock (``prediction_dir`` inside
    ``output_dir``). Under ``torchrun`` only rank 0 locks. Without ``fcntl`` (Windows) nothing is locked, with a
    warning.

    Example (train.json's ``initialize``, after the checks)::

        "$@scripts.folder_lock.lock_folders({'ckpt_dir': @ckpt_dir, 'output_dir': @output_dir})"

    Returns:
        the resolved folders this process now holds.

    Raises:
        FolderInUseError: a folder is held by another process, naming the key, the folder and that process (its
            id and command); the folders locked before it are released again.
    """
    if _rank() != 0:
        return []
    if fcntl is None:
        logger.warning("no fcntl on this system: the output folders are not locked against a second run")
        return []
    wanted = {key: Path(folder).resolve() for key, folder in folders.items() if folder is not None}
    roots = {
        key: folder
        for key, folder in wanted.items()
        if not any(folder != other and folder.is_relative_to(other) for other in wanted.values())
    }
    taken: list[Path] = []
    try:
        for key, folder in roots.items():
            if folder not in _HELD:
                _HELD[folder] = _acquire(key, folder)
                taken.append(folder)
    except FolderInUseError:
        release_folders(taken)
        raise
    return list(dict.fromkeys(roots.values()))


def release_folders(folders: Iterable[str | os.PathLike | None] | None = None) -> None:
    """Release those of ``folders`` this process holds (None: all; the others are skipped); the ``.lock`` files
    stay. Example (train.json's ``finalize``): ``"$@scripts.folder_lock.release_folders([@ckpt_dir, @output_dir])"``."""
    chosen = list(_HELD) if folders is None else [Path(f).resolve() for f in folders if f is not None]
    for folder in chosen:
        handle = _HELD.pop(folder, None)
        if handle is not None:
            handle.close()  # closing the file releases its flock


def held_folders() -> list[Path]:
    """The folders this process holds."""
    return list(_HELD)
