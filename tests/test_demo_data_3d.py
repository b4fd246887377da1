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
"""Tests of scripts/demo_data_3d.py: determinism, geometry (anisotropic spacing, mixed orientations), classes, label
noise, safe (re)generation, and a short training through ``train_3d.json`` on the demo it makes by default."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import torch
from ignite.engine import Events
from scripts.demo_data_3d import AXCODES, CLASS_NAMES, ensure_demo_dataset_3d, make_demo_dataset_3d, render_volume

from tests.test_bundle import CONFIGS, TINY_NET, run, workflow

SMALL = {"num_train": 4, "num_val": 1, "num_test": 4}
SPACING = (1.5, 1.5, 4.0)


def load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Voxels and affine of a NIfTI file."""
    image = nib.load(path)
    return np.asarray(image.dataobj), image.affine


def arrays(root: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(root)): load(p)[0] for p in sorted(root.rglob("*.nii.gz"))}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo3d") / "data"
    make_demo_dataset_3d(root, **SMALL)
    return root


@pytest.fixture(scope="module")
def content(dataset: Path) -> dict[str, Any]:
    return json.loads((dataset / "datalist.json").read_text())


def test_render_volume_is_deterministic() -> None:
    first, second = render_volume(np.random.default_rng(7)), render_volume(np.random.default_rng(7))
    assert first[0].tobytes() == second[0].tobytes() and first[1].tobytes() == second[1].tobytes()
    assert render_volume(np.random.default_rng(8))[0].tobytes() != first[0].tobytes()


def test_dataset_is_deterministic(dataset: Path, tmp_path: Path) -> None:
    make_demo_dataset_3d(tmp_path / "same", **SMALL)
    make_demo_dataset_3d(tmp_path / "fewer", num_train=2, num_val=1, num_test=1)
    make_demo_dataset_3d(tmp_path / "other", **SMALL, seed=1)
    reference = arrays(dataset)
    same, fewer, other = (arrays(tmp_path / name) for name in ("same", "fewer", "other"))
    assert same.keys() == reference.keys()
    assert all(same[k].tobytes() == reference[k].tobytes() for k in reference)
    assert all(fewer[k].tobytes() == reference[k].tobytes() for k in fewer)  # a case does not depend on the counts
    assert other["images/training_000.nii.gz"].tobytes() != reference["images/training_000.nii.gz"].tobytes()
    assert (tmp_path / "same/datalist.json").read_text() == (dataset / "datalist.json").read_text()


def test_volume_format() -> None:
    image, label = render_volume(np.random.default_rng(3), (48, 40, 20), (2.0, 2.0, 5.0))
    assert image.shape == label.shape == (48, 40, 20)
    assert image.dtype == np.int16 and label.dtype == np.uint8
    assert image.min() < -900 and image.max() > 250  # air around the body, bone in it


def test_anisotropic_spacing_and_orientations(dataset: Path, content: dict[str, Any]) -> None:
    """Every file is 1.5 x 1.5 x 4 mm in the orientation AXCODES[index % 4], its label on the same grid; whatever the
    orientation, the affine puts the liver on the patient's right and the kidneys behind it (RAS world mm)."""
    for split in ("training", "validation", "test"):
        for index, entry in enumerate(content[split]):
            image, affine = load(dataset / entry["image"])
            label, label_affine = load(dataset / entry["label"])
            assert image.shape == label.shape and np.array_equal(affine, label_affine)
            assert "".join(nib.aff2axcodes(affine)) == AXCODES[index % len(AXCODES)]
            world_axis = nib.orientations.io_orientation(affine)[:, 0].astype(int)  # of each array axis
            np.testing.assert_allclose(nib.affines.voxel_sizes(affine), np.take(SPACING, world_axis), atol=1e-6)
            world = {c: nib.affines.apply_affine(affine, np.argwhere(label == c)).mean(axis=0) for c in (1, 2)}
            assert world[1][0] > 5.0 and world[2][1] < world[1][1], (split, index, world)
    assert {"".join(nib.aff2axcodes(load(dataset / e["image"])[1])) for e in content["test"]} == set(AXCODES)


def test_every_class_in_every_volume(dataset: Path, content: dict[str, Any]) -> None:
    for split in ("training", "validation", "test"):
        for entry in content[split]:
            key = "label_clean" if split == "training" else "label"
            image, _ = load(dataset / entry["image"])
            label, _ = load(dataset / entry[key])
            assert set(np.unique(label)) == {0, 1, 2, 3}
            hu = {c: float(image[label == c].mean()) for c in range(4)}
            assert 40 < hu[1] < 90 and hu[2] > hu[1] + 30 and hu[3] < hu[1] - 20, hu  # CT-like, in the window


def test_datalist_layout_and_clean_evaluation_labels(content: dict[str, Any]) -> None:
    assert content["num_classes"] == 4 and tuple(content["labels"].values()) == CLASS_NAMES
    assert content["tensorImageSize"] == "3D" and content["modality"] == {"0": "CT"}
    assert [len(content[k]) for k in ("training", "validation", "test")] == [4, 1, 4]
    assert all(set(e) == {"image", "label", "label_clean"} for e in content["training"])
    assert all(e["label"].startswith("labels_noisy/") for e in content["training"])
    assert all(set(e) == {"image", "label"} and e["label"].startswith("labels/") for e in content["validation"])
    assert all(set(e) == {"image", "label"} and e["label"].startswith("labels/") for e in content["test"])
    assert content["generator"]["spacing"] == list(SPACING) and content["generator"]["size"] == [64, 64, 24]


def test_training_labels_carry_morphological_noise(dataset: Path, content: dict[str, Any]) -> None:
    """Default noise: each organ eroded or dilated by one voxel, so each noisy class is a subset or a superset of
    the clean one; about 2.7 % of the voxels change (as many as 30 % of the organ voxels), as the datalist says."""
    assert content["generator"]["noise"] == "morph" and content["generator"]["noise_kwargs"] == {"radius": [1, 1]}
    rates = []
    for entry in content["training"]:
        noisy, clean = load(dataset / entry["label"])[0], load(dataset / entry["label_clean"])[0]
        for c in (1, 2, 3):
            inside = noisy[clean == c] == c
            assert inside.all() or not np.any((noisy == c) & (clean != c)), c  # dilated or eroded
        rates.append(np.mean(noisy != clean))
    assert 0.01 < np.mean(rates) < 0.05
    assert content["noise_rates"]["pixel"] == pytest.approx(np.mean(rates))


@pytest.mark.parametrize("noise, kwargs, low, high", [(None, {}, 0.0, 0.0), ("symmetric", {"rate": 0.2}, 0.19, 0.21)])
def test_noise_rate_as_asked(tmp_path: Path, noise: str | None, kwargs: dict[str, Any], low: float, high: float):
    path = make_demo_dataset_3d(tmp_path / "d", 2, 1, 1, size=(32, 32, 16), noise=noise, noise_kwargs=kwargs)
    content = json.loads(Path(path).read_text())
    rates = [
        np.mean(load(tmp_path / "d" / e["label"])[0] != load(tmp_path / "d" / e["label_clean"])[0])
        for e in content["training"]
    ]
    assert low <= np.mean(rates) <= high
    assert content["noise_rates"]["pixel"] == pytest.approx(np.mean(rates))


def test_ensure_is_idempotent(tmp_path: Path) -> None:
    root = tmp_path / "demo_3d"
    path = ensure_demo_dataset_3d(root, **SMALL)
    stamp = os.stat(path).st_mtime_ns
    assert ensure_demo_dataset_3d(root, **SMALL) == path == str(root / "datalist.json")
    assert os.stat(path).st_mtime_ns == stamp  # reused, not regenerated
    with pytest.raises(ValueError, match="was made with"):
        ensure_demo_dataset_3d(root, **SMALL, spacing=(1.0, 1.0, 3.0))
    with pytest.raises(FileExistsError, match=str(root)):
        make_demo_dataset_3d(root, **SMALL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo_3d"]  # no temporary folders left


def test_interrupted_run_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import scripts.demo_data_3d as demo3d

    calls = []

    def fail_on_third(*args: Any) -> tuple[np.ndarray, np.ndarray]:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return render_volume(*args)

    monkeypatch.setattr(demo3d, "render_volume", fail_on_third)
    with pytest.raises(KeyboardInterrupt):
        ensure_demo_dataset_3d(tmp_path / "demo", **SMALL)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"num_val": 0}, "at least one case"),
        ({"size": (64, 64)}, "at least 16 voxels"),
        ({"size": (64, 64, 8)}, "at least 16 voxels"),
        ({"spacing": (1.5, 0.0, 4.0)}, "3 positive sizes"),
        ({"noise": "gaussian"}, "expected noise"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        make_demo_dataset_3d(tmp_path / "demo", **kwargs)
    assert not (tmp_path / "demo").exists()


def test_3d_overlays_default_to_the_demo() -> None:
    config = json.loads((CONFIGS / "common_3d.json").read_text())  # under both the training and inference configs
    assert config["dataset_dir"] == "$@bundle_root + '/data/demo_3d'"
    assert config["datalist"] == "$@scripts.demo_data_3d.ensure_demo_dataset_3d(@dataset_dir)"
    assert config["num_classes"] == len(CLASS_NAMES) and config["class_names"] == list(CLASS_NAMES)


@pytest.mark.slow
def test_short_training_on_the_default_3d_demo(tmp_path: Path) -> None:
    """No datalist given: ``train_3d.json`` generates the demo into ``dataset_dir`` and trains on it (noisy labels,
    mixed orientations; a training entry's ``label_clean`` does not reach ``Spacingd``). A tiny network at 4 mm,
    8 epochs: checkpoints, and a best validation mean Dice above 0.2 (measured: 0.45 at seed 0, 0.35 and 0.24 at
    seeds 1 and 2; the liver is learned first, at Dice 0.65-0.7, then the kidneys; chance is 0)."""
    override = {
        **TINY_NET,
        "dataset_dir": str(tmp_path / "demo_3d"),
        "ckpt_dir": str(tmp_path / "models"),
        "output_dir": str(tmp_path / "eval"),
        "pixdim": [4.0, 4.0, 4.0],
        "patch_size": [16, 16, 16],
        "batch_size": 1,
        "num_samples": 2,
        "affinity_grid": 4,
        "affinity_pairs": 256,
        "max_epochs": 8,
        "warmup_epochs": 3,
        "learning_rate": 0.05,
        "tensorboard_images": 0,
    }
    wf = workflow(["train.json", "common_3d.json", "train_3d.json"], "train", **override)
    dice = []
    wf.parser.get_parsed_content("validate#evaluator").add_event_handler(
        Events.EPOCH_COMPLETED, lambda engine: dice.append(engine.state.metrics["val_mean_dice"])
    )
    run(wf)
    assert (tmp_path / "demo_3d" / "datalist.json").is_file()
    last = torch.load(tmp_path / "models" / "checkpoint_epoch=8.pt", map_location="cpu", weights_only=False)
    assert bool(last["loss"]["_correction"]) and (tmp_path / "models" / "model.pt").is_file()
    assert len(dice) == 8 and max(dice) > 0.2, dice
