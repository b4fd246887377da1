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
"""One run per output folder (``scripts/folder_lock.py``): a second process is refused with the folder and the
holder's id, a killed holder leaves no lock, and two real trainings into one ckpt_dir cannot overwrite each other."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from scripts.checkpoint import checkpoint_problem, saved_epoch
from scripts.folder_lock import LOCK_NAME, FolderInUseError, held_folders, lock_folders, release_folders

from tests.test_checkpoint import ROOT, bundle_args, tiny  # noqa: F401 (tiny: the fixture of the tiny dataset)

HOLDER = """
import sys, time, types
scripts = types.ModuleType("scripts")  # the package without its __init__: folder_lock needs neither torch nor MONAI
scripts.__path__ = [sys.argv[1] + "/scripts"]
sys.modules["scripts"] = scripts
from scripts.folder_lock import lock_folders
lock_folders({"output_dir": sys.argv[2]})
print("held", flush=True)
time.sleep(120)
"""


def hold(folder: Path) -> subprocess.Popen:
    """A process holding ``folder`` (as output_dir) until killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(ROOT), str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "held", proc.stderr.read()
    return proc


def test_a_second_process_is_refused_and_a_killed_holder_leaves_no_lock(tmp_path):
    folder = tmp_path / "eval"
    holder = hold(folder)
    try:
        assert (folder / LOCK_NAME).read_text().startswith(f"pid {holder.pid}: ")
        with pytest.raises(FolderInUseError) as info:
            lock_folders({"ckpt_dir": tmp_path / "models", "output_dir": folder})
        message = str(info.value)
        assert message.startswith(f"output_dir: '{folder}' is in use by another run (pid {holder.pid}: ")
        assert message.endswith("); wait for it to end, or give this run another output_dir")
        assert (tmp_path / "models").resolve() not in held_folders()  # the folder taken first is released again
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # as a run killed mid-epoch: the OS drops its lock
        holder.wait()
    try:
        assert lock_folders({"output_dir": folder}) == [folder.resolve()]  # at once: no stale lock to clean up
        assert (folder / LOCK_NAME).read_text().startswith(f"pid {os.getpid()}: ")
        assert lock_folders({"output_dir": folder}) == [folder.resolve()]  # this process may take it again
    finally:
        release_folders([folder])
    assert folder.resolve() not in held_folders()


def test_nested_folders_share_one_lock_and_other_ranks_do_not_lock(tmp_path, monkeypatch):
    out = tmp_path / "eval"
    try:
        assert lock_folders({"output_dir": out, "prediction_dir": out / "predictions", "none": None}) == [out.resolve()]
        assert not (out / "predictions").exists()  # covered by output_dir's lock, nothing written into it
    finally:
        release_folders([out, out / "predictions"])
    monkeypatch.setenv("RANK", "1")  # torchrun's other processes: rank 0 holds the folders for the run
    assert lock_folders({"output_dir": tmp_path / "rank1"}) == [] and not (tmp_path / "rank1").exists()


@pytest.mark.slow
def test_two_trainings_into_one_ckpt_dir(tiny, tmp_path):  # noqa: F811 (the imported fixture)
    """The second training into a held ckpt_dir stops at once (exit 1, the folder and the first one's pid last,
    nothing written); the first, held in its first iteration meanwhile, then finishes with its own model."""
    models, marker = tmp_path / "models", tmp_path / "first_in_iteration_1"
    first_args = {**tiny, "ckpt_dir": str(models), "output_dir": str(tmp_path / "eval1"), "max_epochs": 2}
    log = open(tmp_path / "first.log", "w")
    cmd = [sys.executable, "-m", "tests.test_checkpoint", "hold:1", str(marker), *bundle_args(first_args)]
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), (tmp_path / "first.log").read_text()[-3000:]
        second_args = {**first_args, "output_dir": str(tmp_path / "eval2"), "learning_rate": 0.05}
        second = subprocess.run(
            [sys.executable, "-m", "monai.bundle", *bundle_args(second_args)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        last = second.stderr.strip().splitlines()[-1]
        assert second.returncode == 1, second.stdout[-2000:] + second.stderr[-2000:]
        assert last.startswith(f"FolderInUseError: ckpt_dir: '{models}' is in use by another run (pid {first.pid}: ")
        assert "Traceback" not in second.stderr and "Epoch[" not in second.stdout + second.stderr
        assert not (tmp_path / "eval2").exists()  # stopped before writing anything
        assert first.poll() is None  # the first is still there, in its first iteration
        marker.unlink()  # let it train on
        assert first.wait(timeout=300) == 0, (tmp_path / "first.log").read_text()[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        log.close()
    assert saved_epoch(models / "checkpoint_final.pt") == 2
    for name in ("checkpoint_final.pt", "model.pt"):
        assert checkpoint_problem(models / name) is None, name
    final = torch.load(models / "checkpoint_final.pt", map_location="cpu", weights_only=True)
    best = torch.load(models / "model.pt", map_location="cpu", weights_only=True)
    assert final["optimizer"]["param_groups"][0]["initial_lr"] == 0.025  # the first run's, not the second's 0.05
    assert final["best_metric"]["best_metric"] > 0 and set(best) == set(final["network"])
