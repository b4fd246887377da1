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
"""The end of a multi-process run (``scripts/distributed.py``); the two-process runs are in ``test_bundle.py``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch.distributed as dist
from scripts.distributed import shutdown

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_shutdown_waits_then_destroys_the_group(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        start = time.perf_counter()
        shutdown(settle_s=0.2)
        assert time.perf_counter() - start >= 0.2
        assert not dist.is_initialized()
        shutdown()  # nothing to shut down: returns at once
        assert not dist.is_initialized()
    finally:  # never leave a process group to the tests after this one
        if dist.is_initialized():
            dist.destroy_process_group()


def test_shutdown_rejects_a_negative_wait():
    with pytest.raises(ValueError, match="settle_s must be >= 0, got -1"):
        shutdown(settle_s=-1)


@pytest.mark.parametrize("name", ["multi_gpu_train.json", "multi_gpu_evaluate.json"])
def test_multi_gpu_configs_end_with_shutdown(name):
    """Both multi-process configs end through :func:`shutdown` and nothing after it touches the process group."""
    finalize = json.loads((CONFIGS / name).read_text())["finalize"]
    assert finalize[-1] == "$@scripts.distributed.shutdown()"
    assert not any("dist." in step for step in finalize)
