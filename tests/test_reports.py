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
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from PIL import Image
from scripts.reports import ClassMetricsHandler, ClassMetricsSaver, LearningCurveHandler, ValidationImagesHandler
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

NAMES = ["shaft", "wrist", "clasper"]
DICE = torch.tensor([[0.9, 0.5, float("nan")], [0.7, 0.3, 0.6]])  # (images, classes); NaN: class absent


def evaluator(details: torch.Tensor) -> Engine:
    """An engine of two one-image iterations whose epoch ends with ``val_mean_dice`` and its per-image details,
    as MONAI's metric handlers leave them."""
    engine = Engine(lambda e, batch: batch)

    @engine.on(Events.EPOCH_COMPLETED)
    def compute(e: Engine) -> None:
        e.state.metrics["val_mean_dice"] = float(torch.nanmean(details.nanmean(1)))
        e.state.metric_details = {"val_mean_dice": details}

    return engine


def test_class_metrics_saver_names_the_classes(tmp_path):
    engine = evaluator(DICE)
    batch = [{"image": {"filename_or_obj": f"case{i}.png"}} for i in range(2)]
    meta = lambda batch: [item["image"] for item in batch]  # noqa: E731
    saver = ClassMetricsSaver(str(tmp_path), NAMES, metric_details="*", batch_transform=meta, summary_ops=["mean"])
    saver.attach(engine)
    engine.run([[batch[0]], [batch[1]]], max_epochs=1)
    with open(tmp_path / "val_mean_dice_raw.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["filename", *NAMES, "mean"]
    assert [row["filename"] for row in rows] == ["case0.png", "case1.png"]
    with open(tmp_path / "val_mean_dice_summary.csv") as f:
        summary = {row["class"]: float(row["mean"]) for row in csv.DictReader(f)}
    # "mean": MONAI's, over the images of each image's class mean: (0.7 + 0.5333) / 2
    assert summary == pytest.approx({"shaft": 0.8, "wrist": 0.4, "clasper": 0.6, "mean": 0.6167}, abs=1e-4)


def test_class_metrics_saver_checks_the_class_count(tmp_path):
    engine = evaluator(DICE)
    ClassMetricsSaver(str(tmp_path), ["background", *NAMES], metric_details="*").attach(engine)
    with pytest.raises(ValueError, match=r"3 classes per image, but 4 class names.*class_names\[1:\]"):
        engine.run([[{}]], max_epochs=1)


def test_class_metrics_handler_puts_named_metrics():
    engine = evaluator(DICE)
    ClassMetricsHandler(NAMES, {"val_mean_dice": "val_dice"}).attach(engine)
    engine.run([0, 1], max_epochs=1)
    per_class = {k: v for k, v in engine.state.metrics.items() if k.startswith("val_dice/")}
    assert per_class == pytest.approx({"val_dice/shaft": 0.8, "val_dice/wrist": 0.4, "val_dice/clasper": 0.6})


def test_class_metrics_handler_needs_details():
    engine = evaluator(DICE)
    ClassMetricsHandler(NAMES, {"val_mean_iou": "val_jaccard"}).attach(engine)
    with pytest.raises(KeyError, match="val_mean_iou"):
        engine.run([0], max_epochs=1)


def case(index: int) -> dict[str, torch.Tensor]:
    """A decollated evaluator output: RGB image 3 x W x H, one-hot label and prediction 4 x W x H."""
    label = torch.zeros(6, 5, dtype=torch.long)
    label[: index + 1] = 2
    onehot = torch.nn.functional.one_hot(label, 4).permute(2, 0, 1).float()
    return {"image": torch.rand(3, 6, 5), "label": onehot, "pred": onehot}


@pytest.mark.parametrize("max_cases,expected", [(4, 4), (2, 2)])
def test_validation_images_in_tensorboard(tmp_path, max_cases, expected):
    engine = Engine(lambda e, batch: batch)
    handler = ValidationImagesHandler(log_dir=str(tmp_path), max_cases=max_cases)
    handler.attach(engine)
    engine.run([[case(0), case(1)], [case(2), case(3)], [case(4)]], max_epochs=2)
    handler._writer.close()
    events = EventAccumulator(str(tmp_path), size_guidance={"images": 0}).Reload()
    assert sorted(events.Tags()["images"]) == [f"val_case/{i}" for i in range(expected)]
    shown = events.Images("val_case/1")
    assert [e.step for e in shown] == [1, 2] and (shown[0].height, shown[0].width) == (5, 3 * 6)  # H x 3W, upright
    panel = handler.panel(**{"image": case(1)["image"], "label": case(1)["label"], "pred": case(1)["pred"]})
    np.testing.assert_array_equal(panel[0, 6], [0, 128, 0])  # label column, first row: class 2 (green)
    np.testing.assert_array_equal(panel[0, 8], [0, 0, 0])  # beyond the class-2 rows: background


def test_learning_curve_png_and_resume(tmp_path):
    validator = Engine(lambda e, batch: None)
    score = lambda e: e.state.metrics.update(val_mean_dice=0.1 * e.state.epoch)  # noqa: E731
    validator.add_event_handler(Events.EPOCH_COMPLETED, score)

    def validate(trainer: Engine) -> None:  # as MONAI's ValidationHandler runs an Evaluator: at the trainer's epoch
        validator.state.max_epochs, validator.state.epoch = trainer.state.epoch, trainer.state.epoch - 1
        validator.run([0])

    def train(start_epoch: int, max_epochs: int) -> Engine:
        trainer = Engine(lambda e, batch: {"loss": torch.tensor(float(batch))})
        trainer.add_event_handler(Events.EPOCH_COMPLETED, validate)
        LearningCurveHandler(str(tmp_path), validator).attach(trainer)
        trainer.state.epoch = start_epoch  # as a checkpoint loader restores it
        trainer.run([1, 2, 3], max_epochs=max_epochs)
        return trainer

    train(0, 2)
    history = json.loads((tmp_path / "learning_curve.json").read_text())
    assert history == [
        {"epoch": 1, "train_loss": 2.0, "val_mean_dice": pytest.approx(0.1)},
        {"epoch": 2, "train_loss": 2.0, "val_mean_dice": pytest.approx(0.2)},
    ]
    train(2, 3)  # resumed: epochs 1 and 2 are kept from the file
    history = json.loads((tmp_path / "learning_curve.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2, 3] and math.isclose(history[2]["val_mean_dice"], 0.3)
    with Image.open(tmp_path / "learning_curve.png") as png:
        assert png.size == (600, 400)
