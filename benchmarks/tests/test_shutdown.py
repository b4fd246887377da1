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
"""``benchmarks/shutdown.py``: two-process gloo runs at exit, with and without the wait of ``shutdown``."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_shutdown_benchmark_runs_both_settings(tmp_path):
    """One two-process DistributedDataParallel run per setting (``benchmarks/shutdown.py``): the table names
    both, and the run that ends through :func:`shutdown` exits cleanly."""
    from benchmarks.shutdown import main

    main(["--runs", "1", "--out", str(tmp_path)])
    rows = (tmp_path / "shutdown.md").read_text().splitlines()[-2:]
    assert rows[0].startswith("| barrier, destroy (settle_s 0) | 1 | ")
    assert rows[1] == "| shutdown() (settle_s 0.5) | 1 | 0 | 0 |"
