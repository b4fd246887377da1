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
"""The 2D patch overlays on images larger than the patch: ``configs/train_patches.json`` trains on random patches
at full resolution and validates by sliding window, ``evaluate.json`` layered on it scores each test image in its
own size, and ``inference.json`` with ``configs/common_patches.json`` writes predictions of the input's size."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.inferers import SlidingWindowInferer
from PIL import Image

from tests.test_bundle import TINY_NET, run, tiny_demo, workflow

pytestmark = pytest.mark.slow  # every test here trains a network first


PATCHES = {"patch_size": [32, 32], "num_samples": 2, "sw_batch_size": 2}  # 80 x 64 demo frames: 6 windows each


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """Two epochs (one warm-up, one correction) on 32 x 32 patches of the tiny demo's 80 x 64 frames; the shapes
    of the training batches."""
    root = tmp_path_factory.mktemp("patches")
    override = {key: value for key, value in tiny_demo(root).items() if key != "image_size"}  # image_size: the patch
    override.update(PATCHES)
    wf = workflow(["train.json", "common_patches.json", "train_patches.json"], "train", **override)
    batches = []
    wf.parser.get_parsed_content("train#trainer").add_event_handler(
        Events.ITERATION_COMPLETED, lambda engine: batches.append(tuple(engine.state.batch["image"].shape))
    )
    run(wf)
    transforms = [t["_target_"] for t in wf.parser["train#deterministic_transforms"]]
    return {"root": root, "override": override, "batches": batches, "transforms": transforms}


def test_training_on_patches(trained):
    assert trained["batches"] and set(trained["batches"]) == {(4, 3, 32, 32)}  # batch 2 x 2 patches of 32 x 32
    assert "Resized" not in trained["transforms"] and "SpatialPadd" in trained["transforms"]  # full resolution
    last = torch.load(trained["root"] / "models" / "checkpoint_epoch=2.pt", map_location="cpu", weights_only=False)
    assert bool(last["loss"]["_correction"]) and last["transition_optimizer"]["state"][0]["step"] > 0


def test_evaluation_by_sliding_window_in_each_image_size(trained):
    wf = workflow(
        ["train.json", "common_patches.json", "train_patches.json", "evaluate.json"], "eval", **trained["override"]
    )
    inferer = wf.parser.get_parsed_content("validate#inferer")
    assert isinstance(inferer, SlidingWindowInferer) and tuple(inferer.roi_size) == (32, 32)
    shapes = []
    wf.parser.get_parsed_content("validate#evaluator").add_event_handler(
        Events.ITERATION_COMPLETED,
        lambda engine: shapes.extend(tuple(item["pred"].shape[1:]) for item in engine.state.output),
    )
    run(wf)
    assert shapes == [(80, 64)] * 4  # the full frames, never resized
    with open(trained["root"] / "eval" / "val_mean_dice_raw.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and all(0.0 <= float(row["shaft"]) <= 1.0 for row in rows)


def test_inference_writes_predictions_of_the_input_size(trained, tmp_path):
    images = trained["root"] / "data" / "images"
    override = {key: trained["override"][key] for key in (*TINY_NET, "ckpt_dir", "patch_size", "sw_batch_size")}
    override.update(input_dir=str(images), input_pattern="test_*.png", output_dir=str(tmp_path))
    wf = workflow(["inference.json", "common_patches.json"], "infer", **override)
    assert wf.check_properties() in (None, [])  # MONAI's InferProperties
    assert isinstance(wf.parser.get_parsed_content("inferer"), SlidingWindowInferer)
    run(wf)
    written = sorted((tmp_path / "predictions").glob("*_seg.png"))
    assert len(written) == 4
    for pred_path in written:
        pred = np.asarray(Image.open(pred_path))
        image = np.asarray(Image.open(images / pred_path.name.replace("_seg", "")))
        assert pred.shape == image.shape[:2] and pred.max() < 4
