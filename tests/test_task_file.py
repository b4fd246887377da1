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
"""One task file, layered last on every command: train, evaluate and infer a task of its own classes and geometry."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.shapes_data import ensure_shapes_dataset
from tests.test_bundle import CONFIGS, TINY_NET, run, workflow


def test_the_example_task_file_sets_only_keys_the_configs_have():
    """A misspelt key in a task file would be ignored silently: every key of the example is a top-level key of
    train.json or inference.json."""
    example = json.loads((CONFIGS / "task_example.json").read_text())
    known = set(json.loads((CONFIGS / "train.json").read_text())) | set(
        json.loads((CONFIGS / "inference.json").read_text())
    )
    assert set(example) <= known, sorted(set(example) - known)
    assert {"datalist", "num_classes", "class_names", "image_size", "max_epochs", "ckpt_dir", "output_dir"} <= set(
        example
    )


@pytest.mark.slow
def test_train_evaluate_infer_from_one_task_file(tmp_path):
    """Grey frames of three classes (organ, lesion; the generator's duct relabelled background) at 64 x 48: the
    task file alone gives train, evaluate and inference their classes, channels and geometry."""
    source = Path(ensure_shapes_dataset(tmp_path / "shapes", num_train=6, num_val=2, num_test=2, size=(48, 64)))
    data = tmp_path / "data"
    (data / "labels").mkdir(parents=True)
    content = json.loads(source.read_text())
    for split in ("training", "validation", "test"):
        for entry in content[split]:
            label = np.array(Image.open(source.parent / entry["label"]))
            Image.fromarray(np.where(label == 3, 0, label).astype(np.uint8)).save(data / entry["label"])
            entry["image"] = str(source.parent / entry["image"])
    (data / "datalist.json").write_text(json.dumps(content))
    task = {
        **TINY_NET,
        "datalist": str(data / "datalist.json"),
        "dataset_dir": str(data),
        "num_classes": 3,
        "class_names": ["background", "organ", "lesion"],
        "image_channels": 1,
        "image_size": [64, 48],
        "max_epochs": 2,
        "warmup_epochs": 1,
        "ckpt_dir": str(tmp_path / "models"),
        "output_dir": str(tmp_path / "eval"),
        "input_dir": str(source.parent / "images"),
        "input_pattern": "test_*.png",
    }
    task_file = tmp_path / "my_task.json"
    task_file.write_text(json.dumps(task, indent=4))

    run(workflow(["train.json", str(task_file)], "train"))
    assert (tmp_path / "models" / "model.pt").is_file()
    run(workflow(["train.json", "evaluate.json", str(task_file)], "eval"))
    with open(tmp_path / "eval" / "val_mean_dice_raw.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and set(rows[0]) == {"filename", "organ", "lesion", "mean"}
    run(workflow(["inference.json", str(task_file)], "infer"))
    predictions = sorted((tmp_path / "eval" / "predictions").glob("*_seg.png"))
    assert [p.name for p in predictions] == ["test_000_seg.png", "test_001_seg.png"]
    for path in predictions:
        pred = np.asarray(Image.open(path))
        assert pred.shape == (48, 64) and pred.max() <= 2  # the input's size, the task's classes
