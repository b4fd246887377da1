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
"""Training state that can be trusted: checkpoints written atomically, never with a NaN or an infinity, resumed only
from a file that loads and matches the configuration, never from one older than a valid final checkpoint; a resumed
run that is already complete ends without training (divergence stops in :mod:`scripts.divergence`).

MONAI's ``CheckpointSaver`` and ``CheckpointLoader`` do the work; the classes here are thin subclasses that swap in
an atomic, finite-only ``DiskSaver`` and make the loader's errors name the file and the mismatching setting.
"""

from __future__ import annotations

import glob
import logging
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from ignite.handlers import DiskSaver
from monai.handlers import CheckpointLoader, CheckpointSaver

from .divergence import DivergenceError

__all__ = [
    "FINAL_FILENAME",
    "AtomicDiskSaver",
    "CheckpointError",
    "CheckpointSettings",
    "NonFiniteStateError",
    "RunComplete",
    "SafeCheckpointLoader",
    "SafeCheckpointSaver",
    "check_ckpt_dir",
    "checkpoint_problem",
    "completed_run",
    "latest_checkpoint",
    "newest_loadable",
    "non_finite_tensors",
    "saved_epoch",
]

logger = logging.getLogger(__name__)


class NonFiniteStateError(DivergenceError):
    """A checkpoint would have held a NaN or an infinity, and was not written."""


class CheckpointError(RuntimeError):
    """A checkpoint does not load, or does not match the configuration it is loaded into."""


def non_finite_tensors(state: Any, prefix: str = "") -> list[str]:
    """Dotted names of the floating-point tensors in a nested state dict that hold a NaN or an infinity."""
    if isinstance(state, torch.Tensor):
        floating = state.is_floating_point() or state.is_complex()
        return [prefix or "<tensor>"] if floating and not bool(torch.isfinite(state).all()) else []
    if isinstance(state, Mapping):
        items: Any = state.items()
    elif isinstance(state, (list, tuple)):
        items = enumerate(state)
    else:
        return []
    return [
        name for key, value in items for name in non_finite_tensors(value, f"{prefix}.{key}" if prefix else f"{key}")
    ]


def _names(names: Sequence[str], limit: int = 4) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


class AtomicDiskSaver(DiskSaver):
    """ignite's ``DiskSaver(atomic=True)`` that refuses non-finite state and deletes old files only after a write.

    Each checkpoint is written to a temporary file in ``dirname`` and renamed, so a killed process leaves either the
    complete file or none (plus a stray ``tmp*`` file). ignite's ``Checkpoint`` removes the oldest file *before*
    writing the new one; here that removal waits until the next file is complete. A checkpoint with a NaN or an
    infinity in any floating-point tensor raises :class:`NonFiniteStateError` and writes nothing.

    Args:
        dirname: folder of the checkpoints (created if missing).
        filename: a fixed file name for every save (as ``model.pt``), or None for the name ``Checkpoint`` gives.
    """

    def __init__(self, dirname: str | os.PathLike, filename: str | None = None) -> None:
        super().__init__(dirname=dirname, atomic=True, create_dir=True, require_empty=False)
        self.filename = filename
        self._pending_removal: list[str] = []

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        filename = self.filename or filename
        bad = non_finite_tensors(checkpoint)
        if bad:
            raise NonFiniteStateError(
                f"refusing to write '{self.dirname / filename}': non-finite values in {_names(bad)}"
            )
        super().__call__(checkpoint, filename, metadata)
        done, self._pending_removal = self._pending_removal, []
        for old in done:
            if old != filename and idist.get_rank() == self.save_on_rank:
                (self.dirname / old).unlink(missing_ok=True)

    def remove(self, filename: str) -> None:
        """Remove ``filename`` once the next checkpoint is written (ignite asks just before writing it)."""
        self._pending_removal.append(self.filename or filename)


class SafeCheckpointSaver(CheckpointSaver):
    """MONAI's ``CheckpointSaver`` writing through :class:`AtomicDiskSaver`; its best key metric is resumable.

    - Every file (interval, key-metric ``model.pt``, final) is written atomically and only when finite.
    - No checkpoint is written when training stops on an exception: ignite runs only the first ``EXCEPTION_RAISED``
      handler (MONAI's ``StatsHandler`` attaches first), and the state mid-iteration is not one to resume from.
      ``save_final`` writes ``final_filename`` when training completes.
    - ``state_dict()`` holds the best key metric, its epoch and the key-metric checkpoint's tracking list; add this
      saver (the one on the evaluator) to the training checkpoint's ``save_dict`` and a resumed run replaces
      ``model.pt`` only with a better model than the best before the interruption.

    Args:
        save_dir: folder of the checkpoints.
        save_dict: objects to save, as for MONAI's ``CheckpointSaver``.
        kwargs: the other arguments of MONAI's ``CheckpointSaver``.
    """

    def __init__(self, save_dir: str, save_dict: dict, **kwargs: Any) -> None:
        super().__init__(save_dir=save_dir, save_dict=save_dict, **kwargs)
        for checkpoint in (self._final_checkpoint, self._key_metric_checkpoint, self._interval_checkpoint):
            if checkpoint is not None:
                checkpoint.save_handler = AtomicDiskSaver(save_dir, filename=checkpoint.save_handler.filename)
        self._engine: Engine | None = None

    def attach(self, engine: Engine) -> None:
        super().attach(engine)
        self._engine = engine
        if self._final_checkpoint is not None:
            engine.remove_event_handler(self.exception_raised, Events.EXCEPTION_RAISED)

    def state_dict(self) -> dict[str, Any]:
        tracked = {} if self._key_metric_checkpoint is None else self._key_metric_checkpoint.state_dict()
        state = getattr(self._engine, "state", None)
        return {  # plain floats, ints and strings, so that torch.load(weights_only=True) reads it
            "checkpointer": {key: [(float(p), str(name)) for p, name in items] for key, items in tracked.items()},
            "best_metric": float(getattr(state, "best_metric", -1)),
            "best_metric_epoch": int(getattr(state, "best_metric_epoch", -1)),
        }

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict["checkpointer"]:
            super().load_state_dict(state_dict["checkpointer"])
        if self._engine is not None:
            self._engine.state.best_metric = state_dict["best_metric"]
            self._engine.state.best_metric_epoch = state_dict["best_metric_epoch"]


class CheckpointSettings:
    """The configuration settings a checkpoint depends on, saved with it and compared when it is loaded.

    Put it in the training checkpoint's ``save_dict`` (and ``load_dict``); loading a checkpoint written with other
    values raises ``ValueError`` naming each setting, e.g. ``num_classes is 4 in the checkpoint, 3 in the config``.
    Settings only one side knows are not compared.

    Args:
        settings: name -> value (numbers, strings, booleans, lists of them).
    """

    def __init__(self, **settings: Any) -> None:
        self.settings = {name: list(v) if isinstance(v, (list, tuple)) else v for name, v in settings.items()}

    def state_dict(self) -> dict[str, Any]:
        return dict(self.settings)

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        differ = [
            f"{name} is {state_dict[name]} in the checkpoint, {value} in the config"
            for name, value in self.settings.items()
            if name in state_dict and state_dict[name] != value
        ]
        if differ:
            raise ValueError("; ".join(differ))


class SafeCheckpointLoader(CheckpointLoader):
    """MONAI's ``CheckpointLoader`` (``torch.load(weights_only=True)``) whose errors name the file and the mismatch.

    :class:`CheckpointSettings` in ``load_dict`` are loaded first, so a checkpoint of another configuration fails on
    the setting that differs rather than on the first tensor shape. Any failure (a file that does not load, a missing
    key, a shape mismatch) raises :class:`CheckpointError` starting with the file's path.

    Args:
        load_path: the checkpoint file.
        load_dict: objects to load into, as for MONAI's ``CheckpointLoader``.
        kwargs: the other arguments of MONAI's ``CheckpointLoader``.
    """

    def __init__(self, load_path: str, load_dict: dict, **kwargs: Any) -> None:
        ordered = dict(sorted(load_dict.items(), key=lambda item: not isinstance(item[1], CheckpointSettings)))
        super().__init__(load_path=load_path, load_dict=ordered, **kwargs)

    def __call__(self, engine: Engine) -> None:
        try:
            super().__call__(engine)
        except Exception as e:
            raise CheckpointError(f"cannot resume from '{self.load_path}': {type(e).__name__}: {e}") from e


def checkpoint_problem(path: str | os.PathLike) -> str | None:
    """Why the checkpoint at ``path`` cannot be resumed from (empty, does not load, non-finite), or None."""
    if os.path.getsize(path) == 0:
        return "the file is empty (0 bytes)"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        return f"it does not load ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    bad = non_finite_tensors(state)
    return f"non-finite values in {_names(bad)}" if bad else None


def saved_epoch(path: str | os.PathLike) -> int | None:
    """The last completed epoch of the training checkpoint at ``path`` (its ignite trainer state), or None when it
    does not load or holds no trainer state."""
    try:
        trainer = torch.load(path, map_location="cpu", weights_only=True).get("trainer")
        if "epoch" in trainer:
            return int(trainer["epoch"])
        return int(trainer["iteration"]) // int(trainer["epoch_length"])  # what ignite keeps for a resumable epoch
    except Exception:
        return None


def newest_loadable(paths: Sequence[str], epochs: Mapping[str, int] | None = None) -> str:
    """The newest of ``paths`` (highest epoch, then modification time) that :func:`checkpoint_problem` finds nothing
    wrong with; each newer one skipped is logged with the reason. The epoch of a file is ``epochs[path]`` when
    given, else the last number in its name.

    Raises:
        FileNotFoundError: when none loads, listing each file and why.
    """

    def newness(path: str) -> tuple[int, float]:
        if epochs is not None and path in epochs:
            return epochs[path], os.path.getmtime(path)
        numbers = re.findall(r"\d+", os.path.basename(path))
        return (int(numbers[-1]) if numbers else -1, os.path.getmtime(path))

    skipped = []
    for path in sorted(paths, key=newness, reverse=True):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        logger.warning(f"resume: skipping checkpoint '{path}': {problem}")
        skipped.append(f"'{path}': {problem}")
    raise FileNotFoundError("no checkpoint to resume from loads: " + "; ".join(skipped))


FINAL_FILENAME = "checkpoint_final.pt"  # train.json's final_filename: written when training completes


def latest_checkpoint(ckpt_dir: str, pattern: str = "checkpoint_epoch=*.pt", final: str = FINAL_FILENAME) -> str:
    """Path of the newest checkpoint in ``ckpt_dir`` that loads, to resume training from.

    Candidates: the files matching ``pattern`` (their epoch is the number in the name) and the final checkpoint
    ``final`` (its epoch is the one it saved, :func:`saved_epoch`). Newest: the highest epoch, then the latest
    modification time. A checkpoint that is empty, does not load with ``torch.load(weights_only=True)`` or holds a
    NaN or an infinity is skipped with a warning (:func:`newest_loadable`); so a corrupt newest epoch checkpoint
    never sends a run back before a valid final one.

    Raises:
        FileNotFoundError: when ``ckpt_dir`` holds no candidate, or none of them loads.
    """
    found = glob.glob(os.path.join(glob.escape(ckpt_dir), pattern))
    final_path = os.path.join(ckpt_dir, final)
    epochs = {}
    if os.path.isfile(final_path):
        found.append(final_path)
        epoch = saved_epoch(final_path)
        epochs[final_path] = -1 if epoch is None else epoch
    if not found:
        raise FileNotFoundError(f"no checkpoint '{pattern}' in '{ckpt_dir}' to resume from; train without resume first")
    return newest_loadable(found, epochs)


def completed_run(ckpt_dir: str, max_epochs: int, final: str = FINAL_FILENAME) -> tuple[str, int] | None:
    """``(path, epoch)`` of the final checkpoint in ``ckpt_dir`` when it loads, holds only finite values and saved
    epoch ``max_epochs`` or later: the run is complete. None otherwise."""
    path = os.path.join(ckpt_dir, final)
    if not os.path.isfile(path) or checkpoint_problem(path) is not None:
        return None
    epoch = saved_epoch(path)
    return (path, epoch) if epoch is not None and epoch >= max_epochs else None


class RunComplete(SystemExit):
    """``--resume`` found the run complete: the process ends with exit status 0, having trained and written nothing."""

    def __init__(self, message: str) -> None:
        super().__init__(0)
        self.message = message

    def __str__(self) -> str:
        return self.message


def check_ckpt_dir(ckpt_dir: str, resume: bool, max_epochs: int) -> None:
    """What training finds in ``ckpt_dir`` before it writes anything (train.json's ``prepare_outputs``).

    - ``resume`` and a complete run (:func:`completed_run`: a valid ``checkpoint_final.pt`` at epoch ``max_epochs``
      or later): logs that the run is complete and raises :class:`RunComplete`, exit status 0, without training,
      without writing and without touching the final checkpoint (raise ``max_epochs`` to train further).
    - not ``resume`` and a ``model.pt`` there: logs a warning that this run replaces it (and the checkpoints).

    Raises:
        RunComplete: the run is complete.
    """
    if resume:
        done = completed_run(ckpt_dir, max_epochs)
        if done is not None:
            message = (
                f"run complete: '{done[0]}' holds epoch {done[1]} of max_epochs {max_epochs}; nothing to train or "
                "write (raise max_epochs to train further)"
            )
            logger.info(message)
            raise RunComplete(message)
    elif os.path.isfile(os.path.join(ckpt_dir, "model.pt")):
        logger.warning(
            f"ckpt_dir '{ckpt_dir}' holds a model.pt: this run replaces it, and the checkpoints there, with its own "
            "(another --ckpt_dir keeps them; --resume true continues their run)"
        )
