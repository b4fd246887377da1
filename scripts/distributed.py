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
"""The end of a multi-process run (``finalize`` of ``configs/multi_gpu_train.json`` and
``configs/multi_gpu_evaluate.json``)."""

from __future__ import annotations

import time

import torch.distributed as dist

__all__ = ["SETTLE_S", "shutdown"]

SETTLE_S = 0.5  # seconds between the final barrier and the destruction of the process group


def shutdown(settle_s: float = SETTLE_S) -> None:
    """Meet the other processes at a barrier, wait ``settle_s`` seconds, then destroy the default process group; a
    no-op when no process group is initialised.

    The wait is for gloo. Its worker threads free a finished collective (and the tensors it held, whose Python
    objects need the GIL) a moment after the caller has returned from it, and a barrier keeps the collectives before
    it until the barrier itself is freed. ``destroy_process_group`` does not stop those threads while
    ``DistributedDataParallel`` still holds the group, so a rank that exits straight after the barrier races them:
    a worker that asks for the GIL during interpreter shutdown is unwound inside a C++ destructor and the process
    aborts ("terminate called without an active exception", SIGABRT; core dump: the worker in
    ``~AsyncBarrierWork``, the main thread in ``Py_FinalizeEx``), or the main thread, holding the GIL, frees the
    group while a worker holds the group's lock and waits for the GIL, and the rank hangs. Both came after the
    checkpoints were written. Sleeping releases the GIL, so the workers finish while the interpreter is whole;
    counts with and without the wait: ``docs/benchmarks/shutdown.md`` (``scripts/benchmark_shutdown.py``) and
    ``docs/benchmarks/shutdown_standalone.md``.

    Args:
        settle_s: seconds to wait after the barrier (>= 0).
    """
    if settle_s < 0:
        raise ValueError(f"settle_s must be >= 0, got {settle_s}")
    if not (dist.is_available() and dist.is_initialized()):
        return
    dist.barrier()
    time.sleep(settle_s)
    dist.destroy_process_group()
