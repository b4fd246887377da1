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
"""How often a two-process gloo run aborts or hangs at exit, with and without the wait of
:func:`scripts.distributed.shutdown`.

Usage::

    python -m benchmarks.shutdown --runs 100     # 30 to 55 s per pair of runs on 2 CPUs

Each run is ``torchrun --standalone --nproc_per_node=2`` of this module's ``--worker``: one DistributedDataParallel
step, an ``all_gather`` that rank 1 follows straight away with the finalize barrier while rank 0 is still busy (as
at the end of a training run, where rank 0 saves checkpoints), then :func:`scripts.distributed.shutdown` with
``settle_s`` 0 (the old finalize: barrier, destroy) or the default, and the interpreter's exit. The two settings
alternate, so load on the machine hits both alike. A run fails when a rank aborts (SIGABRT, "terminate called
without an active exception": a gloo worker asks for the GIL during interpreter shutdown) or hangs (the main thread,
holding the GIL, frees the group while a worker holds the group's lock and waits for the GIL; killed after 120 s).
Output: a table on stdout and in ``--out`` (``shutdown.md``).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from scripts.distributed import SETTLE_S, shutdown

BUNDLE_ROOT = Path(__file__).resolve().parents[1]


def worker(settle_s: float) -> None:
    """One rank of the stand-in run (launched by torchrun)."""
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(3, 1))  # holds the group past destroy
    model(torch.ones(2, 3)).sum().backward()
    gathered = [torch.zeros(3) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, torch.full((3,), float(dist.get_rank())))
    if dist.get_rank() == 0:
        time.sleep(0.05)  # rank 0 still busy: rank 1's barrier is queued right behind its all_gather
    shutdown(settle_s=settle_s)


def launch(settle_s: float, timeout_s: float = 120.0) -> str:
    """One two-process run: "ok" when both ranks exit 0, "hung" when it outlives ``timeout_s`` (killed), else
    "aborted"."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["-m", "benchmarks.shutdown", "--worker", "--settle_s", str(settle_s)]
    run = subprocess.Popen(
        cmd, cwd=BUNDLE_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        return "ok" if run.wait(timeout=timeout_s) == 0 else "aborted"
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)  # the launcher and both ranks
        run.wait()
        return "hung"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100, help="runs of each setting")
    parser.add_argument("--out", default=str(BUNDLE_ROOT / "docs" / "benchmarks"), help="folder of shutdown.md")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--settle_s", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.settle_s)
        return
    settings = {"barrier, destroy (settle_s 0)": 0.0, f"shutdown() (settle_s {SETTLE_S})": SETTLE_S}
    outcomes = {name: {"aborted": 0, "hung": 0} for name in settings}
    start = time.perf_counter()
    for i in range(args.runs):
        for name, settle_s in settings.items():
            outcome = launch(settle_s)
            if outcome != "ok":
                outcomes[name][outcome] += 1
        counts = (f"{n}: {o['aborted']} aborted, {o['hung']} hung" for n, o in outcomes.items())
        print(f"{i + 1}/{args.runs}: " + "; ".join(counts), flush=True)
    lines = [
        "# Two-process gloo runs that abort or hang at exit",
        "",
        f"`python -m benchmarks.shutdown --runs {args.runs}`: {args.runs} runs of each setting, alternating, "
        f"{(time.perf_counter() - start) / 60:.1f} min.",
        "",
        "| finalize | runs | aborted at exit | hung at exit (killed after 120 s) |",
        "|---|---|---|---|",
        *(f"| {name} | {args.runs} | {o['aborted']} | {o['hung']} |" for name, o in outcomes.items()),
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "shutdown.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
