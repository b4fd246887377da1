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
"""The CT/MRI overlays on tiny CT-like scans with different spacings and orientations (NIfTI and a DICOM series):
``configs/common_3d.json`` (spacing, intensity window, patches, sliding window) with ``configs/train_3d.json``,
``evaluate.json`` layered on them, and ``inference.json`` with ``common_3d.json`` writing each prediction in its
input's own geometry."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ignite.engine import Events
from monai.bundle import ConfigParser
from monai.inferers import SlidingWindowInferer
from scipy.spatial.transform import Rotation
from scripts.config_check import ConfigError, reported_error
from scripts.data import LoadImageByFormatd

from tests.test_bundle import CONFIGS, ROOT, TINY_NET, run, workflow
from tests.test_data import write_series

CLASS_HU = (0.0, 60.0, 140.0)  # background soft tissue, shell, core; air (-1000 HU) around the body
SCANS = {  # name: (shape, spacing in mm, rotation as a rotation vector in degrees, flipped axes)
    "iso": ((20, 20, 20), (2.0, 2.0, 2.0), (0, 0, 0), ()),
    "thick": ((27, 27, 14), (1.5, 1.5, 3.0), (0, 0, 0), ()),
    "fine": ((40, 32, 16), (1.0, 1.25, 2.5), (0, 0, 0), (0,)),
    "tilted": ((32, 16, 23), (1.25, 2.5, 1.75), (0, 0, 30), (0, 1)),
    "val": ((16, 32, 27), (2.5, 1.25, 1.5), (-20, 0, 0), (2,)),
    "oblique": ((33, 18, 25), (1.2, 2.2, 1.6), (15, -10, 35), (1,)),  # the test scan: rotated, anisotropic
}
OVERRIDE_3D = {  # the overlay's keys at a size that trains in seconds on a CPU
    **TINY_NET,
    "num_classes": 3,
    "class_names": ["background", "shell", "core"],
    "pixdim": [2.0, 2.0, 2.0],
    "patch_size": [16, 16, 16],
    "num_samples": 2,
    "batch_size": 2,
    "affinity_grid": 4,
    "affinity_pairs": 256,
    "sw_batch_size": 2,
}


def scan_affine(shape: tuple, spacing: tuple, rotation: tuple, flips: tuple) -> np.ndarray:
    """A voxel-to-world (RAS, mm) affine: axes flipped and rotated, the volume's centre at the world origin."""
    axes = np.diag([-s if i in flips else s for i, s in enumerate(spacing)])
    linear = Rotation.from_rotvec(np.radians(rotation)).as_matrix() @ axes
    affine = np.eye(4)
    affine[:3, :3], affine[:3, 3] = linear, -linear @ (np.asarray(shape) - 1) / 2
    return affine


def label_at(world: np.ndarray) -> np.ndarray:
    """Classes at world points (..., 3): a shell (1) of radius 10 mm around a core (2) of radius 5 mm."""
    dist = np.linalg.norm(world - np.array([2.0, -1.0, 1.0]), axis=-1)
    return np.where(dist < 5, 2, np.where(dist < 10, 1, 0)).astype(np.uint8)


def write_scan(folder: Path, name: str, shape: tuple, spacing: tuple, rotation: tuple, flips: tuple) -> dict:
    """A CT-like NIfTI scan and its label, drawn in world coordinates, so each scan shows the same object."""
    affine = scan_affine(shape, spacing, rotation, flips)
    voxels = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    world = voxels @ affine[:3, :3].T + affine[:3, 3]
    label = label_at(world)
    body = np.all(np.abs(world) < (16, 14, 17), axis=-1)  # 32 x 28 x 34 mm: not a multiple of the UNet's 4 voxels
    rng = np.random.default_rng(len(name))
    image = np.where(body, np.take(CLASS_HU, label), -1000.0) + rng.normal(0, 10, shape)
    nib.save(nib.Nifti1Image(image.astype(np.float32), affine), folder / f"{name}.nii.gz")
    nib.save(nib.Nifti1Image(label, affine), folder / f"{name}_label.nii.gz")
    return {"image": f"{name}.nii.gz", "label": f"{name}_label.nii.gz"}


def write_series_with_label(folder: Path) -> dict:
    """A 4-slice CT DICOM series folder (0.66 x 0.66 x 2 mm) and a NIfTI label in the geometry MONAI reads it in."""
    write_series(folder / "series")
    image = LoadImageByFormatd("image")({"image": str(folder / "series")})["image"]
    hu = np.asarray(image)
    label = np.where(hu >= 150, 2, np.where(hu > 0, 1, 0)).astype(np.uint8)
    nib.save(nib.Nifti1Image(label, np.asarray(image.affine, dtype=np.float64)), folder / "series_label.nii.gz")
    return {"image": "series", "label": "series_label.nii.gz"}


@pytest.fixture(scope="module")
def scans(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("bundle3d")
    data = root / "data"  # outputs may not lie inside the dataset folder
    data.mkdir()
    entries = {name: write_scan(data, name, *spec) for name, spec in SCANS.items()}
    entries["series"] = write_series_with_label(data)
    datalist = data / "datalist.json"
    splits = {"training": ("iso", "thick", "fine", "tilted", "series"), "validation": ("val",)}
    splits["test"] = ("oblique", "series")
    datalist.write_text(json.dumps({split: [entries[name] for name in names] for split, names in splits.items()}))
    return {"root": root, "data": data, "datalist": str(datalist)}


@pytest.mark.slow
def test_train_and_evaluate_through_the_3d_overlay(scans):
    """Two epochs on patches (one warm-up, one correction), then evaluation with ``evaluate.json`` on top: sliding
    window, and per-class metrics against each test label in its own voxel grid (a rotated, anisotropic NIfTI and a
    DICOM series)."""
    root = scans["root"]
    override = {
        **OVERRIDE_3D,
        "datalist": scans["datalist"],
        "dataset_dir": str(scans["data"]),
        "ckpt_dir": str(root / "models"),
        "output_dir": str(root / "eval"),
        "max_epochs": 2,
        "warmup_epochs": 1,
        "transition_estimate": "trusted",  # the warm-up network predicts the validation volume by sliding window
    }
    wf = workflow(["train.json", "common_3d.json", "train_3d.json"], "train", **override)
    assert wf.parser.get_parsed_content("loss_def").affinity_pairs == 256
    batches = []
    wf.parser.get_parsed_content("train#trainer").add_event_handler(
        Events.ITERATION_COMPLETED, lambda engine: batches.append(tuple(engine.state.batch["image"].shape))
    )
    run(wf)
    assert batches and set(batches) == {(4, 1, 16, 16, 16)}  # batch_size x num_samples patches of patch_size
    last = torch.load(root / "models" / "checkpoint_epoch=2.pt", map_location="cpu", weights_only=False)
    assert bool(last["loss"]["_correction"]) and last["transition_optimizer"]["state"][0]["step"] > 0

    wf = workflow(["train.json", "common_3d.json", "train_3d.json", "evaluate.json"], "eval", **override)
    assert isinstance(wf.parser.get_parsed_content("validate#inferer"), SlidingWindowInferer)
    shapes = []
    wf.parser.get_parsed_content("validate#evaluator").add_event_handler(
        Events.ITERATION_COMPLETED,
        lambda engine: shapes.extend(tuple(item["pred"].shape[1:]) for item in engine.state.output),
    )
    run(wf)
    assert shapes == [SCANS["oblique"][0], (128, 128, 4)]  # predictions back in each test scan's voxel grid
    with open(root / "eval" / "val_mean_dice_raw.csv") as f:
        rows = list(csv.DictReader(f))
    assert [Path(row["filename"]).name for row in rows] == ["oblique.nii.gz", "series"]
    assert all(0.0 <= float(row[name]) <= 1.0 for row in rows for name in ("shell", "core"))


class ThresholdNet(torch.nn.Module):
    """Class probabilities from the windowed CT intensity (air and tissue 0..0.26, shell 0.53, core 0.89)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        classes = (x[:, 0] > 0.4).long() + (x[:, 0] > 0.7).long()
        return F.one_hot(classes, 3).movedim(-1, 1).float()


@pytest.mark.slow
def test_inference_writes_predictions_in_the_input_geometry(scans, tmp_path):
    """``inference.json`` + ``common_3d.json`` on a rotated, anisotropic NIfTI scan and a DICOM series: each
    prediction has its input's shape and affine (nibabel), and, from a network that thresholds the intensity, lies on
    the object in the input's own voxels (it overlays the scan in a viewer)."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    shutil.copy(scans["data"] / "oblique.nii.gz", inputs)
    shutil.copytree(scans["data"] / "series", inputs / "series")
    keys = (*TINY_NET, "num_classes", "pixdim", "patch_size", "sw_batch_size")  # the network's keys: sizes checked
    override = {key: OVERRIDE_3D[key] for key in keys}
    override.update(input_dir=str(inputs), input_pattern="*", output_dir=str(tmp_path / "out"), handlers=[])
    wf = workflow(["inference.json", "common_3d.json"], "infer", **override, network=ThresholdNet())
    assert wf.check_properties() in (None, [])  # MONAI's InferProperties
    run(wf)
    predictions = tmp_path / "out" / "predictions"
    assert sorted(p.name for p in predictions.iterdir()) == ["oblique_seg.nii.gz", "series_seg.nii.gz"]
    source, pred = nib.load(inputs / "oblique.nii.gz"), nib.load(predictions / "oblique_seg.nii.gz")
    assert pred.shape == source.shape == SCANS["oblique"][0]
    np.testing.assert_allclose(pred.affine, source.affine, atol=1e-5)
    assert pred.get_data_dtype() == np.uint8
    predicted, truth = np.asarray(pred.dataobj), np.asarray(nib.load(scans["data"] / "oblique_label.nii.gz").dataobj)
    for cls in (1, 2):
        dice = 2 * np.sum((predicted == cls) & (truth == cls)) / (np.sum(predicted == cls) + np.sum(truth == cls))
        assert dice > 0.85, (cls, dice)
    series = LoadImageByFormatd("image")({"image": str(inputs / "series")})["image"]
    pred = nib.load(predictions / "series_seg.nii.gz")
    assert pred.shape == tuple(series.shape) == (128, 128, 4)
    np.testing.assert_allclose(pred.affine, np.asarray(series.affine), atol=1e-4)


def preprocessing(**keys: Any) -> ConfigParser:
    """train.json with the 3D overlays and ``keys`` on top, unparsed."""
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / name) for name in ("train.json", "common_3d.json", "train_3d.json")])
    parser.update({"bundle_root": str(ROOT), **keys})
    return parser


@pytest.mark.slow
def test_mri_intensity_normalises_the_nonzero_voxels(scans):
    """``intensity "mri"``: no CT window; the voxels inside the body z-scored, the air around it cropped away."""
    image = nib.load(scans["data"] / "iso.nii.gz")
    mri = np.where(np.asarray(image.dataobj) > -500, np.asarray(image.dataobj) + 500, 0).astype(np.float32)
    nib.save(nib.Nifti1Image(mri, image.affine), scans["root"] / "mri.nii.gz")
    parser = preprocessing(intensity="mri", pixdim=[2.0, 2.0, 2.0], patch_size=[8, 8, 8])
    names = [type(t).__name__ for t in parser.get_parsed_content("validate#preprocessing").transforms]
    assert "NormalizeIntensityd" in names and "ScaleIntensityRanged" not in names
    case = {"image": str(scans["root"] / "mri.nii.gz"), "label": str(scans["data"] / "iso_label.nii.gz")}
    out = parser.get_parsed_content("validate#preprocessing")(case)["image"]
    assert tuple(out.shape) == (1, 16, 14, 16)  # the body's voxels at 2 mm, the air cropped
    assert float(out.mean()) == pytest.approx(0.0, abs=1e-4) and float(out.std()) == pytest.approx(1.0, abs=1e-2)


def test_unknown_intensity_is_refused_naming_the_key():
    with pytest.raises(Exception) as error:  # MONAI wraps it in its "Failed to evaluate" error
        preprocessing(intensity="pet").get_parsed_content("inference_transforms")
    reported = reported_error(error.value)  # what the bundle's exit hook prints as the last line
    assert isinstance(reported, ConfigError) and str(reported) == "intensity: expected one of 'ct', 'mri', got 'pet'"
