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
"""Crash-safe checkpoints and resume checks (``scripts/checkpoint.py``).

Run as a module (``python -m tests.test_checkpoint PAUSE MARKER ARGS...``) this file is the training process that
``test_kill_and_resume`` kills: it runs ``monai.bundle ARGS`` and pauses, after touching MARKER, halfway through
writing the checkpoint of epoch N (PAUSE ``save:N``) or in the N-th training iteration (PAUSE ``iteration:N``);
with PAUSE ``hold:N`` it pauses in the N-th iteration until MARKER is deleted, then trains on
(``tests/test_folder_lock.py``).
"""

from __future__ import annotations

import copy
import io
import itertools
import logging
import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint
from monai.bundle import ConfigWorkflow
from scripts.checkpoint import (
    AtomicDiskSaver,
    CheckpointError,
    CheckpointSettings,
    NonFiniteStateError,
    RunComplete,
    SafeCheckpointLoader,
    SafeCheckpointSaver,
    check_ckpt_dir,
    checkpoint_problem,
    completed_run,
    latest_checkpoint,
    non_finite_tensors,
    saved_epoch,
)
from scripts.config_check import reported_error
from scripts.demo_data import make_demo_dataset
from scripts.losses import CALCLoss

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
TINY = {  # 4 training images of 32x40 in batches of 2: an epoch is 2 iterations on a tiny UNet
    "unet_channels": [8, 16, 32],
    "unet_strides": [2, 2],
    "feature_channels": 8,
    "embedding_channels": 8,
    "affinity_grid": 8,
    "image_size": [40, 32],
    "warmup_epochs": 1,
    "progress_bar": False,
}


@pytest.mark.parametrize(
    "state,expected",
    [
        ({"a": torch.ones(2), "b": [torch.zeros(1), {"c": torch.tensor([1.0, float("nan")])}]}, ["b.1.c"]),
        ({"w": torch.tensor([float("inf")]), "n": torch.tensor([1, 2]), "x": float("inf")}, ["w"]),  # tensors only
        ({"ok": torch.ones(3, dtype=torch.float16), "step": 3, "name": "adam"}, []),
    ],
)
def test_non_finite_tensors(state, expected):
    assert non_finite_tensors(state) == expected


class Unpicklable:
    """A saved object whose state cannot be written, so that the write fails halfway."""

    def state_dict(self) -> dict:
        return {"f": lambda: 0}


def saver_engine(epochs: int = 3) -> Engine:
    engine = Engine(lambda engine, batch: None)
    engine.state.epoch = epochs
    return engine


def test_atomic_saver_deletes_the_previous_checkpoint_only_after_the_next_is_written(tmp_path):
    net = torch.nn.Linear(2, 2)
    to_save = {"network": net, "extra": torch.nn.Linear(1, 1)}
    checkpoint = Checkpoint(to_save, AtomicDiskSaver(tmp_path), score_function=lambda e: e.state.epoch, n_saved=1)
    checkpoint.score_name = "epoch"
    engine = saver_engine()
    engine.state.epoch = 1
    checkpoint(engine)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint_epoch=1.pt"]
    engine.state.epoch = 2
    to_save["extra"] = Unpicklable()  # the epoch-2 write fails mid-way
    checkpoint.to_save = to_save
    with pytest.raises(Exception, match="lambda|pickle"):
        checkpoint(engine)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint_epoch=1.pt"]  # kept, and no partial epoch-2 file
    assert checkpoint_problem(tmp_path / "checkpoint_epoch=1.pt") is None
    to_save["extra"] = torch.nn.Linear(1, 1)
    engine.state.epoch = 3
    checkpoint(engine)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint_epoch=3.pt"]
    saved = torch.load(tmp_path / "checkpoint_epoch=3.pt", weights_only=True)
    assert torch.equal(saved["network"]["weight"], net.weight.detach())


def test_saver_refuses_non_finite_state(tmp_path):
    net = torch.nn.Linear(2, 2)
    saver = AtomicDiskSaver(tmp_path, filename="model.pt")
    saver({"w": torch.ones(1)}, "ignored.pt")
    before = (tmp_path / "model.pt").read_bytes()
    with torch.no_grad():
        net.bias[1] = float("nan")
    with pytest.raises(NonFiniteStateError, match=r"model\.pt': non-finite values in network\.bias"):
        saver({"network": net.state_dict()}, "ignored.pt")
    saver.remove("model.pt")  # what ignite asks before replacing the file: the file stays until the next write
    assert os.listdir(tmp_path) == ["model.pt"] and (tmp_path / "model.pt").read_bytes() == before


def test_saver_keeps_the_best_metric_across_a_resume(tmp_path):
    """The key-metric saver's state restores the best value: a resumed run replaces model.pt only with a better one."""

    def evaluator(saver: SafeCheckpointSaver, scores: list[float]) -> Engine:
        engine = Engine(lambda engine, batch: None)

        @engine.on(Events.EPOCH_COMPLETED)
        def score(engine: Engine) -> None:
            engine.state.metrics["dice"] = scores[engine.state.epoch - 1]

        saver.attach(engine)
        return engine

    def saver(net: torch.nn.Module) -> SafeCheckpointSaver:
        return SafeCheckpointSaver(
            str(tmp_path), {"model": net}, save_key_metric=True, key_metric_name="dice", key_metric_filename="model.pt"
        )

    first = saver(torch.nn.Linear(2, 2))
    engine = evaluator(first, [0.5, 0.8, 0.6])
    engine.state.best_metric, engine.state.best_metric_epoch = 0.8, 2  # as MONAI's evaluator keeps them
    engine.run(range(1), max_epochs=3)
    state = first.state_dict()
    assert state["best_metric"] == 0.8 and state["best_metric_epoch"] == 2
    assert [p for p, _ in next(iter(state["checkpointer"].values()))] == [0.8]
    best_bytes = (tmp_path / "model.pt").read_bytes()

    resumed = saver(torch.nn.Linear(2, 2))
    engine = evaluator(resumed, [0.7, 0.9])
    resumed.load_state_dict(copy.deepcopy(state))
    assert (engine.state.best_metric, engine.state.best_metric_epoch) == (0.8, 2)
    engine.run(range(1), max_epochs=1)  # 0.7 < 0.8: model.pt is kept
    assert (tmp_path / "model.pt").read_bytes() == best_bytes
    engine.run(range(1), max_epochs=2)  # 0.9: replaced, atomically, by the resumed network
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert torch.equal(saved["weight"], resumed.save_dict["model"].weight.detach())
    assert os.listdir(tmp_path) == ["model.pt"]


def write_checkpoint(path: Path, value: float) -> None:
    torch.save({"network": {"weight": torch.full((2,), value)}, "trainer": {"epoch": 1}}, path)


def test_latest_checkpoint_skips_broken_and_non_finite(tmp_path, caplog):
    with pytest.raises(FileNotFoundError, match="to resume from"):
        latest_checkpoint(str(tmp_path))
    for epoch, value in ((1, 1.0), (2, 2.0), (3, float("nan"))):
        write_checkpoint(tmp_path / f"checkpoint_epoch={epoch}.pt", value)
    (tmp_path / "checkpoint_epoch=4.pt").write_bytes(b"")  # killed while written by a non-atomic saver
    whole = (tmp_path / "checkpoint_epoch=2.pt").read_bytes()
    (tmp_path / "checkpoint_epoch=10.pt").write_bytes(whole[: len(whole) // 2])  # 10 is newer than 4 (not 1...)
    write_checkpoint(tmp_path / "model.pt", 5.0)
    os.utime(tmp_path / "checkpoint_epoch=1.pt", (time.time() + 60, time.time() + 60))  # mtime does not decide
    with caplog.at_level(logging.WARNING, logger="scripts.checkpoint"):
        assert latest_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint_epoch=2.pt")
    skipped = [r.getMessage() for r in caplog.records]
    assert len(skipped) == 3
    assert "checkpoint_epoch=10.pt': it does not load" in skipped[0]
    assert "checkpoint_epoch=4.pt': the file is empty (0 bytes)" in skipped[1]
    assert "checkpoint_epoch=3.pt': non-finite values in network.weight" in skipped[2]
    for epoch in (1, 2):
        os.remove(tmp_path / f"checkpoint_epoch={epoch}.pt")
    with pytest.raises(FileNotFoundError, match=r"no checkpoint to resume from loads: .*=10.*=4.*=3\.pt': non-finite"):
        latest_checkpoint(str(tmp_path))


def write_trained(path: Path, epoch: int, epoch_length: int = 2) -> None:
    """A training checkpoint whose ignite trainer state says ``epoch`` epochs are done, as ignite saves it."""
    trainer = {"iteration": epoch * epoch_length, "epoch_length": epoch_length, "max_epochs": 3}
    torch.save({"network": {"weight": torch.full((2,), float(epoch))}, "trainer": trainer}, path)


def test_a_corrupt_newest_epoch_checkpoint_falls_back_to_the_final_one(tmp_path, caplog):
    """The final checkpoint competes by the epoch it saved: a corrupt checkpoint_epoch=3.pt falls back to the valid
    checkpoint_final.pt of epoch 3, not to checkpoint_epoch=2.pt (which used to retrain and overwrite the final)."""
    for epoch in (2, 3):
        write_trained(tmp_path / f"checkpoint_epoch={epoch}.pt", epoch)
    write_trained(tmp_path / "checkpoint_final.pt", 3)
    assert saved_epoch(tmp_path / "checkpoint_final.pt") == 3 and saved_epoch(tmp_path / "model.pt") is None
    whole = (tmp_path / "checkpoint_epoch=3.pt").read_bytes()
    (tmp_path / "checkpoint_epoch=3.pt").write_bytes(whole[: len(whole) // 2])
    with caplog.at_level(logging.WARNING, logger="scripts.checkpoint"):
        assert latest_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint_final.pt")
    assert [r.getMessage().split("': ")[0][-22:] for r in caplog.records] == ["/checkpoint_epoch=3.pt"]
    os.remove(tmp_path / "checkpoint_epoch=2.pt")  # only one epoch checkpoint kept (n_saved 1): still resumable
    assert latest_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint_final.pt")
    write_trained(tmp_path / "checkpoint_final.pt", 2)  # an older final (a resumed run in progress): the epoch wins
    write_trained(tmp_path / "checkpoint_epoch=3.pt", 3)
    assert latest_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint_epoch=3.pt")


def test_a_complete_run_is_not_resumed(tmp_path, caplog):
    """--resume with a valid final checkpoint at max_epochs or later: RunComplete (exit status 0), nothing written."""
    check_ckpt_dir(str(tmp_path), resume=True, max_epochs=3)  # an empty folder: nothing to say
    write_trained(tmp_path / "checkpoint_final.pt", 3)
    write_checkpoint(tmp_path / "model.pt", 1.0)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    assert completed_run(str(tmp_path), 3) == (str(tmp_path / "checkpoint_final.pt"), 3)
    assert completed_run(str(tmp_path), 2) is not None and completed_run(str(tmp_path), 4) is None
    with caplog.at_level(logging.INFO, logger="scripts.checkpoint"), pytest.raises(RunComplete) as info:
        check_ckpt_dir(str(tmp_path), resume=True, max_epochs=3)
    assert info.value.code == 0 and isinstance(info.value, SystemExit)
    assert str(info.value).startswith(f"run complete: '{tmp_path}/checkpoint_final.pt' holds epoch 3 of max_epochs 3")
    assert caplog.records[-1].getMessage() == str(info.value)
    check_ckpt_dir(str(tmp_path), resume=True, max_epochs=4)  # a longer run: resumed (from the final, see above)
    (tmp_path / "checkpoint_final.pt").write_bytes(b"")  # a broken final is no proof of completion
    check_ckpt_dir(str(tmp_path), resume=True, max_epochs=3)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="scripts.checkpoint"):
        check_ckpt_dir(str(tmp_path), resume=False, max_epochs=3)
    assert "holds a model.pt: this run replaces it" in caplog.records[-1].getMessage()
    assert before["model.pt"] == ((tmp_path / "model.pt").read_bytes(), (tmp_path / "model.pt").stat().st_mtime_ns)


class Net(torch.nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.features = torch.nn.Conv2d(3, 8, 3)
        self.class_head = torch.nn.Conv2d(8, num_classes, 1)


@pytest.mark.parametrize(
    "settings,message",
    [
        (True, r"checkpoint\.pt': ValueError: num_classes is 4 in the checkpoint, 3 in the config$"),
        (
            False,
            r"checkpoint\.pt': RuntimeError: .*size mismatch for class_head\.weight.*\[4, 8, 1, 1\].*\[3, 8, 1, 1\]",
        ),
    ],
)
def test_loader_names_the_file_and_the_mismatch(tmp_path, settings, message):
    path = tmp_path / "checkpoint.pt"
    torch.save({"settings": {"num_classes": 4, "spatial_dims": 2}, "network": Net(4).state_dict()}, path)
    load_dict: dict = {"network": Net(3)}  # settings listed last: the loader still compares them first
    if settings:
        load_dict["settings"] = CheckpointSettings(num_classes=3, spatial_dims=2, unet_channels=(8, 16))
    loader = SafeCheckpointLoader(str(path), load_dict)
    with pytest.raises(CheckpointError, match=r"(?s)^cannot resume from '" + str(tmp_path) + "/" + message):
        loader(Engine(lambda engine, batch: None))


def cli(override: dict) -> list[str]:
    return [
        f"--{key}={value!r}" if not isinstance(value, str) else f"--{key}={value}" for key, value in override.items()
    ]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """A tiny demo dataset and the overrides that train on it."""
    root = tmp_path_factory.mktemp("ckpt")
    datalist = make_demo_dataset(root / "data", num_train=4, num_val=2, num_test=1, size=(32, 40))
    return {**TINY, "datalist": datalist, "dataset_dir": str(root / "data")}


def bundle_args(override: dict) -> list[str]:
    configs = ["--config_file", str(CONFIGS / "train.json"), "--meta_file", str(CONFIGS / "metadata.json")]
    return ["run", "training", *configs, "--logging_file", str(CONFIGS / "logging.conf"), *cli(override)]


@pytest.mark.slow
def test_huge_volume_weight_stays_finite(tiny, tmp_path):
    """lambda_volume 1e6 (and a transition lr of 1e3) gave NaN transitions and NaN checkpoints from epoch 2 in 0.2.0.
    Now the volume term is floored (``transition_log_volume``) and T has its own bounded Adam steps: the run ends
    with every loss term, transition and checkpoint finite, and the transitions still row-stochastic."""
    override = {**tiny, "ckpt_dir": str(tmp_path / "models"), "output_dir": str(tmp_path / "eval")}
    override.update(lambda_volume=1e6, transition_lr=1e3, max_epochs=3)
    wf = ConfigWorkflow(str(CONFIGS / "train.json"), workflow_type="train", bundle_root=str(ROOT), **override)
    wf.initialize()
    wf.run()
    trainer, loss = wf.parser.get_parsed_content("train#trainer"), wf.parser.get_parsed_content("loss_def")
    wf.finalize()
    assert trainer.state.epoch == 3 and loss.correction
    terms = {name: float(value) for name, value in loss.last_terms.items()}
    assert {"class", "volume", "total"} <= set(terms) and all(map(torch.isfinite, map(torch.tensor, terms.values())))
    assert terms["volume"] < -5  # the huge weight did pull T toward minimum volume: it is not a no-op
    for transition in (loss.t_class(), loss.t_affinity()):
        assert torch.isfinite(transition).all()
        torch.testing.assert_close(transition.sum(dim=1), torch.ones(len(transition)))
    saved = sorted(path.name for path in (tmp_path / "models").glob("*.pt"))
    assert saved == ["checkpoint_epoch=3.pt", "checkpoint_final.pt", "model.pt"]
    assert all(checkpoint_problem(tmp_path / "models" / name) is None for name in saved)


def files_of(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder``: its bytes and modification time."""
    return {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_resume_of_a_complete_run_exits_0_and_writes_nothing(tiny, tmp_path):
    """A finished run with a corrupt newest epoch checkpoint: ``--resume true`` says the run is complete and exits 0
    with every file unchanged (it used to fall back to an older epoch, retrain and overwrite checkpoint_final.pt);
    a longer ``max_epochs`` continues from checkpoint_final.pt."""
    models = tmp_path / "models"
    override = {**tiny, "ckpt_dir": str(models), "output_dir": str(tmp_path / "eval"), "max_epochs": 2}
    wf = ConfigWorkflow(str(CONFIGS / "train.json"), workflow_type="train", bundle_root=str(ROOT), **override)
    wf.initialize()
    wf.run()
    wf.finalize()
    whole = (models / "checkpoint_epoch=2.pt").read_bytes()
    (models / "checkpoint_epoch=2.pt").write_bytes(whole[: len(whole) // 2])  # the only epoch checkpoint, corrupt
    before = files_of(tmp_path)
    cmd = [sys.executable, "-m", "monai.bundle", *bundle_args({**override, "resume": True})]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"run complete: '{models}/checkpoint_final.pt' holds epoch 2 of max_epochs 2" in done.stdout + done.stderr
    assert "Epoch[" not in done.stdout + done.stderr  # no training
    assert files_of(tmp_path) == before  # nothing written, not even a lock

    longer = {**override, "resume": True, "max_epochs": 3}
    wf = ConfigWorkflow(str(CONFIGS / "train.json"), workflow_type="train", bundle_root=str(ROOT), **longer)
    wf.initialize()
    assert wf.parser.get_parsed_content("train#checkpoint_loader").load_path == str(models / "checkpoint_final.pt")
    trainer = wf.parser.get_parsed_content("train#trainer")
    epochs_run: list[int] = []
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda engine: epochs_run.append(engine.state.epoch))
    wf.run()
    wf.finalize()
    assert epochs_run == [3] and saved_epoch(models / "checkpoint_final.pt") == 3


def start_and_kill(pause: str, override: dict, tmp_path: Path) -> str:
    """Run training in a subprocess that pauses at ``pause``; SIGKILL it there; return its output."""
    marker = tmp_path / f"paused_{pause.replace(':', '_')}"
    log = tmp_path / f"{marker.name}.log"
    cmd = [sys.executable, "-m", "tests.test_checkpoint", pause, str(marker), *bundle_args(override)]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 240
            while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert marker.exists(), f"the training process did not reach {pause}:\n" + log.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return log.read_text()


@pytest.mark.slow
def test_kill_and_resume(tiny, tmp_path):
    """SIGKILL halfway through writing checkpoint 3, then mid-epoch 3 of a resumed run; a last resume from checkpoint
    2 ends at the configured epoch with the transitions, stage, optimisers, schedule and best metric of checkpoint 2."""
    models = tmp_path / "models"
    override = {**tiny, "ckpt_dir": str(models), "output_dir": str(tmp_path / "eval"), "max_epochs": 3}
    start_and_kill("save:3", override, tmp_path)
    files = sorted(name for name in os.listdir(models) if name != ".lock")  # the folder lock's file stays
    partial = [name for name in files if name.startswith("tmp")]
    assert [name for name in files if not name.startswith("tmp")] == ["checkpoint_epoch=2.pt", "model.pt"]
    assert len(partial) == 1 and (models / partial[0]).stat().st_size > 0  # the half-written temporary file
    assert all(checkpoint_problem(models / name) is None for name in ("checkpoint_epoch=2.pt", "model.pt"))

    log = start_and_kill("iteration:1", {**override, "resume": True}, tmp_path)  # killed in epoch 3's first step
    assert f"Restored all variables from {models}/checkpoint_epoch=2.pt" in log
    assert not (models / "checkpoint_epoch=3.pt").exists()

    saved = torch.load(models / "checkpoint_epoch=2.pt", map_location="cpu", weights_only=True)
    wf = ConfigWorkflow(str(CONFIGS / "train.json"), workflow_type="train", bundle_root=str(ROOT), **override)
    wf.parser["resume"] = True
    wf.initialize()
    get = wf.parser.get_parsed_content
    trainer, evaluator, loss = get("train#trainer"), get("validate#evaluator"), get("loss_def")
    objects = {name: get(name) for name in ("optimizer", "transition_optimizer", "lr_scheduler")}
    restored: dict = {}

    @trainer.on(Events.EPOCH_STARTED(once=3))
    def capture(engine: Engine) -> None:
        restored.update({name: copy.deepcopy(obj.state_dict()) for name, obj in objects.items()})
        restored["loss"] = copy.deepcopy(loss.state_dict())
        restored["best"] = (evaluator.state.best_metric, evaluator.state.best_metric_epoch)

    wf.run()
    wf.finalize()
    assert trainer.state.epoch == 3 and restored, "the resumed run did not start at epoch 3"
    for key in ("t_class.weight", "t_affinity.weight", "_correction"):  # T_C, T_A and the correction stage
        assert torch.equal(restored["loss"][key], saved["loss"][key]), key
    assert bool(restored["loss"]["_correction"])
    for name in ("optimizer", "transition_optimizer"):
        for index, state in saved[name]["state"].items():
            for key, value in state.items():
                assert torch.equal(restored[name]["state"][index][key], value), (name, index, key)
        assert [g["lr"] for g in restored[name]["param_groups"]] == [g["lr"] for g in saved[name]["param_groups"]]
    assert restored["lr_scheduler"]["last_epoch"] == saved["lr_scheduler"]["last_epoch"] == 2
    assert restored["lr_scheduler"]["_last_lr"] == saved["lr_scheduler"]["_last_lr"]
    best = saved["best_metric"]
    assert restored["best"] == (best["best_metric"], best["best_metric_epoch"]) and 0 < best["best_metric"] <= 1
    final = torch.load(models / "checkpoint_epoch=3.pt", map_location="cpu", weights_only=True)
    assert final["trainer"]["iteration"] == 3 * final["trainer"]["epoch_length"]  # epoch 3, as ignite keeps it
    assert final["settings"]["num_classes"] == 4
    for name in ("checkpoint_epoch=3.pt", "checkpoint_final.pt", "model.pt"):
        assert checkpoint_problem(models / name) is None, name

    other = ConfigWorkflow(str(CONFIGS / "train.json"), workflow_type="train", bundle_root=str(ROOT), **override)
    other.parser.update({"resume": True, "embedding_channels": 16, "max_epochs": 4})  # another configuration
    other.initialize()
    with pytest.raises(RuntimeError) as info:
        other.run()
    causes = [info.value]
    while causes[-1].__cause__ is not None:
        causes.append(causes[-1].__cause__)
    assert any(
        isinstance(e, CheckpointError)
        and str(e).startswith(f"cannot resume from '{models}/checkpoint_final.pt': ValueError: embedding_channels")
        and "embedding_channels is 8 in the checkpoint, 16 in the config" in str(e)
        for e in causes
    ), causes
    reported = reported_error(info.value)  # the last line of a failed run: the file's name with the setting
    assert isinstance(reported, CheckpointError) and str(reported).startswith(f"cannot resume from '{models}/"), (
        reported
    )


def _pause(marker: str, hold: bool = False) -> None:
    Path(marker).touch()
    if hold:  # until the test deletes the marker
        while Path(marker).exists():
            time.sleep(0.05)
        return
    time.sleep(600)  # test_kill_and_resume kills the process here


def main() -> None:
    """The training process of ``test_kill_and_resume`` and of the folder lock's test (see the module docstring)."""
    where, number = sys.argv[1].split(":")
    marker = sys.argv[2]
    if where == "save":
        real_save = torch.save

        def save(obj, f, *args, **kwargs):  # the trainer's checkpoint of epoch N: half of it, then a pause
            trainer = obj.get("trainer") if isinstance(obj, dict) else None
            if isinstance(trainer, dict) and trainer["iteration"] == int(number) * trainer["epoch_length"]:
                buffer = io.BytesIO()
                real_save(obj, buffer, *args, **kwargs)
                f.write(buffer.getvalue()[: buffer.tell() // 2])
                f.flush()
                _pause(marker)
            real_save(obj, f, *args, **kwargs)

        torch.save = save
    else:
        real_forward, calls = CALCLoss.forward, itertools.count(1)

        def forward(self, *args, **kwargs):  # the N-th training iteration, after its forward pass: a pause
            result = real_forward(self, *args, **kwargs)
            if next(calls) == int(number):
                _pause(marker, hold=where == "hold")
            return result

        CALCLoss.forward = forward
    sys.argv = ["monai.bundle", *sys.argv[3:]]
    runpy.run_module("monai.bundle", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
