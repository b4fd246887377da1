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
"""End-to-end tests of scripts/make_noisy.py on tiny generated PNG, NIfTI and DICOM datasets: formats, seeds, the
report's empirical class transition, and the refusal of any output that could modify the input data."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from scripts.make_noisy import main, make_noisy
from scripts.noise import NOISE_MODES
from scripts.noise_rates import noise_rates

PALETTE = [0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 12)


def label_2d(shift: int, height: int = 40, width: int = 52) -> np.ndarray:
    """A non-square 4-class map, not symmetric under flips or transposition."""
    label = np.zeros((height, width), dtype=np.uint8)
    label[4:18, 6 + shift : 30 + shift] = 1
    label[22:36, 3:14] = 2
    label[24:30, 30:48] = 3
    return label


def label_3d(shift: int) -> np.ndarray:
    label = np.zeros((20, 24, 14), dtype=np.int16)
    label[3:12, 4 + shift : 16 + shift, 2:10] = 1
    label[13:18, 6:20, 3:9] = 2
    label[2:6, 18:22, 8:12] = 3
    return label


def write_datalist(root: Path, training: list[dict[str, Any]]) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    content = {
        "name": "toy",
        "labels": {"0": "background", "1": "shaft", "2": "wrist", "3": "clasper"},
        "training": training,
        "validation": [{"image": "images/val.png", "label": "labels/val.png"}],
        "test": ["images/test.png"],
    }
    path = root / "datalist.json"
    path.write_text(json.dumps(content))
    return path


def write_png_dataset(root: Path) -> Path:
    """root/datalist.json, root/labels/{a, sub/b, c (palette), val}.png; 3 training cases, 1 validation, 1 test."""
    (root / "labels" / "sub").mkdir(parents=True)
    training = []
    for i, name in enumerate(["a.png", "sub/b.png", "c.png"]):
        img = Image.fromarray(label_2d(i))
        if i == 2:
            img.putpalette(PALETTE)  # a palette ("P") label
        img.save(root / "labels" / name)
        training.append({"image": f"images/{i}.png", "label": f"labels/{name}"})
    Image.fromarray(label_2d(0)).save(root / "labels" / "val.png")
    return write_datalist(root, training)


@pytest.fixture
def png_dataset(tmp_path: Path) -> Path:
    return write_png_dataset(tmp_path / "data")  # outputs go to tmp_path / <name>, outside the input data


@pytest.fixture
def nifti_dataset(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "labels").mkdir(parents=True)
    affine = np.array([[0.0, -0.8, 0.0, 12.0], [0.7, 0.0, 0.0, -30.0], [0.0, 0.0, 2.5, 4.0], [0, 0, 0, 1]])
    for i in range(2):
        nib.save(nib.Nifti1Image(label_3d(i), affine), root / "labels" / f"v{i}.nii.gz")
    nib.save(nib.Nifti1Image(label_2d(0)[..., None], np.diag([0.5, 0.5, 1, 1])), root / "labels" / "flat.nii")
    training = [{"image": "images/x.nii.gz", "label": f"labels/{n}"} for n in ("v0.nii.gz", "v1.nii.gz", "flat.nii")]
    return write_datalist(root, training)


def run(datalist: Path, out: Path, *options: str) -> dict[str, Any]:
    assert main(["--datalist", str(datalist), "--out", str(out), *options]) == 0
    return json.loads((out / "noise_report.json").read_text())


def read(path: str | Path) -> np.ndarray:
    path = Path(path)
    return np.array(Image.open(path)) if path.suffix == ".png" else np.asanyarray(nib.load(path).dataobj)


TRANSITION = "[[0.8, 0.1, 0.05, 0.05], [0.1, 0.7, 0.2, 0.0], [0.0, 0.6, 0.4, 0.0], [0.1, 0.0, 0.1, 0.8]]"


@pytest.mark.parametrize("mode", NOISE_MODES)
def test_png_end_to_end(png_dataset: Path, tmp_path: Path, mode: str, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    extra = ["--transition", TRANSITION] if mode == "transition" else []
    extra += ["--rate", "0.8"] if mode == "omission" else []  # three parts per frame: erase most of them
    report = run(png_dataset, out, "--mode", mode, "--radius", "1", "3", "--seed", "3", *extra)
    assert "overall (3 cases)" in capsys.readouterr().out
    datalist = json.loads((out / "datalist.json").read_text())
    assert datalist["name"] == "toy" and datalist["labels"]["1"] == "shaft"
    assert datalist["test"] == [{"image": str(png_dataset.parent / "images" / "test.png")}]
    assert datalist["validation"][0]["label"] == str(png_dataset.parent / "labels" / "val.png")  # not corrupted
    for entry, case, name in zip(datalist["training"], report["cases"], ["a.png", "sub/b.png", "c.png"], strict=True):
        assert entry["label_clean"] == str(png_dataset.parent / "labels" / name)
        assert entry["label"] == str(out / "training" / "labels" / name) == case["label"]
        assert Path(entry["image"]).is_absolute()
        clean, noisy = Image.open(entry["label_clean"]), Image.open(entry["label"])
        assert (noisy.size, noisy.mode, noisy.getpalette()) == (clean.size, clean.mode, clean.getpalette())
        rates = noise_rates(np.array(noisy), np.array(clean), 4)
        assert {k: case[k] for k in rates} == rates
        assert 0 < case["pixel"] < 0.7
    pixels = sum(c["pixels_changed"] for c in report["cases"]) / sum(c["num_pixels"] for c in report["cases"])
    assert report["overall"]["pixel"] == pytest.approx(pixels)
    assert report["settings"]["mode"] == mode and report["settings"]["keys"] == ["training"]


def test_png_orientation_and_values_kept(png_dataset: Path, tmp_path: Path) -> None:
    report = run(png_dataset, tmp_path / "out", "--mode", "symmetric", "--fraction", "0")
    for case in report["cases"]:
        np.testing.assert_array_equal(read(case["label"]), read(case["label_clean"]))
    assert report["overall"]["pixel"] == 0.0 and report["overall"]["corrupted"] == 0
    report = run(png_dataset, tmp_path / "ellipse", "--mode", "ellipse")
    for case in report["cases"]:  # rectangles become ellipses in place: most pixels agree
        assert (read(case["label"]) == read(case["label_clean"])).mean() > 0.9


@pytest.mark.parametrize("mode", ["ellipse", "morph", "symmetric"])
def test_nifti_geometry_and_dtype_kept(nifti_dataset: Path, tmp_path: Path, mode: str) -> None:
    report = run(nifti_dataset, tmp_path / "out", "--mode", mode, "--radius", "1", "2")
    for case in report["cases"]:
        clean, noisy = nib.load(case["label_clean"]), nib.load(case["label"])
        np.testing.assert_allclose(noisy.affine, clean.affine)
        assert noisy.shape == clean.shape and noisy.get_data_dtype() == clean.get_data_dtype()
        assert noisy.header.get_zooms() == clean.header.get_zooms()
        assert noise_rates(read(case["label"]), read(case["label_clean"]), 4)["pixel"] == case["pixel"] > 0


def test_dicom_written_as_nifti(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    itk = pytest.importorskip("itk")
    from monai.transforms import LoadImage

    (tmp_path / "data" / "labels").mkdir(parents=True)
    image = itk.image_from_array(np.ascontiguousarray(label_3d(0).transpose(2, 1, 0)).astype(np.uint16))
    image.SetSpacing([0.7, 0.9, 2.0])
    image.SetOrigin([1.0, 2.0, 3.0])
    itk.imwrite(image, str(tmp_path / "data" / "labels" / "d.dcm"))
    datalist = write_datalist(tmp_path / "data", [{"image": "images/d.dcm", "label": "labels/d.dcm"}])
    report = run(datalist, tmp_path / "out", "--mode", "ellipse")
    assert "written as NIfTI" in capsys.readouterr().out
    case = report["cases"][0]
    assert case["format"] == "dicom" and case["label"].endswith("d.dcm.nii.gz")
    clean = LoadImage(reader="ITKReader", image_only=True, dtype=None)(case["label_clean"])
    noisy = nib.load(case["label"])
    np.testing.assert_allclose(noisy.affine, clean.affine.numpy(), atol=1e-5)
    assert noisy.shape == tuple(clean.shape)
    assert 0 < case["pixel"] < 0.1


def test_deterministic_per_case_seeds(png_dataset: Path, tmp_path: Path) -> None:
    first = run(png_dataset, tmp_path / "a", "--mode", "symmetric", "--seed", "5")
    again = run(png_dataset, tmp_path / "b", "--mode", "symmetric", "--seed", "5", "--keys", "training", "validation")
    other = run(png_dataset, tmp_path / "c", "--mode", "symmetric", "--seed", "6")
    for a, b, c in zip(first["cases"], again["cases"], other["cases"], strict=False):
        np.testing.assert_array_equal(read(a["label"]), read(b["label"]))  # same case seed whatever the splits
        assert not np.array_equal(read(a["label"]), read(c["label"]))
    assert [c["split"] for c in again["cases"]] == ["training"] * 3 + ["validation"]
    cases = first["cases"]
    assert not np.array_equal(read(cases[0]["label"]) != 0, read(cases[2]["label"]) != 0)  # cases differ


def test_fraction_and_ignore_index(png_dataset: Path, tmp_path: Path) -> None:
    labels = png_dataset.parent / "labels"
    for name in ("a.png", "sub/b.png"):
        array = np.array(Image.open(labels / name))
        array[:5] = 255
        Image.fromarray(array).save(labels / name)
    report = make_noisy(png_dataset, tmp_path / "out", "asymmetric", ignore_index=255, fraction=0.5, seed=1)
    for case in report["cases"]:
        clean, noisy = read(case["label_clean"]), read(case["label"])
        np.testing.assert_array_equal(noisy[clean == 255], 255)
        assert case["corrupted"] == bool(case["pixel"] > 0)
    assert report["overall"]["corrupted"] == sum(c["corrupted"] for c in report["cases"])


def write_bad_label(root: Path, name: str, array: np.ndarray) -> None:
    (root / "labels").mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(root / "labels" / name)


@pytest.mark.parametrize(
    "setup, error, match",
    [
        (lambda root: None, FileNotFoundError, "labels/a.png"),
        (lambda root: write_bad_label(root, "a.png", np.full((8, 9), 7, np.uint8)), ValueError, r"a\.png.*0\.\.3"),
        (lambda root: write_bad_label(root, "a.png", np.zeros((8, 9, 3), np.uint8)), ValueError, r"a\.png.*RGB"),
        (lambda root: write_bad_label(root, "a.jpg", np.zeros((8, 9), np.uint8)), ValueError, r"a\.jpg.*format"),
    ],
)
def test_bad_labels_named(tmp_path: Path, setup: Any, error: type[Exception], match: str) -> None:
    root = tmp_path / "data"
    root.mkdir()
    setup(root)
    name = "labels/a.jpg" if "jpg" in match else "labels/a.png"
    datalist = write_datalist(root, [{"image": "images/a.png", "label": name}])
    with pytest.raises(error, match=match):
        make_noisy(datalist, tmp_path / "out", "symmetric")


def test_bad_datalists_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.json"):
        make_noisy(tmp_path / "missing.json", tmp_path / "out", "ellipse")
    datalist = write_datalist(tmp_path, [{"image": "images/a.png"}])
    with pytest.raises(ValueError, match="entry 0 of 'training' has no 'label'"):
        make_noisy(datalist, tmp_path / "out", "ellipse")
    with pytest.raises(ValueError, match="expected a 'train' list"):
        make_noisy(datalist, tmp_path / "out", "ellipse", keys=["train"])
    with pytest.raises(SystemExit):
        main(["--datalist", str(datalist), "--out", str(tmp_path), "--mode", "gaussian"])


def test_help(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert "--datalist" in help_text and "ellipse" in help_text and "omission 0.3" in help_text


def count_by_hand(pairs: list[tuple[np.ndarray, np.ndarray]], num_classes: int = 4) -> np.ndarray:
    """(clean, noisy) counts, one pixel at a time."""
    counts = np.zeros((num_classes, num_classes), dtype=int)
    for clean, noisy in pairs:
        for c, n in zip(clean.ravel(), noisy.ravel(), strict=True):
            counts[c, n] += 1
    return counts


def test_report_transition_golden_values(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """All shaft (1) pixels labelled wrist (2): the counts and the transition are known exactly; no clasper (3)."""
    root = tmp_path / "data"
    write_bad_label(root, "a.png", np.array([[0, 0, 1], [1, 2, 2]], np.uint8))
    write_bad_label(root, "b.png", np.array([[0, 1, 1], [1, 1, 0]], np.uint8))
    datalist = write_datalist(root, [{"image": "images/a.png", "label": f"labels/{n}"} for n in ("a.png", "b.png")])
    options = ["--mode", "asymmetric", "--rate", "0", "1", "0", "0", "--class_map", "0", "2", "2", "3"]
    report = run(datalist, tmp_path / "out", *options)
    assert report["overall"]["confusion"] == [[4, 0, 0, 0], [0, 0, 6, 0], [0, 0, 2, 0], [0, 0, 0, 0]]
    assert report["overall"]["transition"] == [[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    assert report["settings"]["rate"] == [0, 1, 0, 0] and report["settings"]["transition"] is None
    assert report["settings"]["transition_expected"] == [[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    printed = capsys.readouterr().out
    assert "empirical transition p(noisy | clean), rows clean:" in printed and "expected transition:" in printed
    assert "\n0.000, 0.000, 1.000, 0.000\n" in printed  # the shaft row
    assert "Dice of noisy against clean labels, per class: 1.000, 0.000, 0.400, -" in printed


@pytest.mark.parametrize("mode", ["symmetric", "morph"])
def test_report_transition_equals_hand_count(png_dataset: Path, tmp_path: Path, mode: str) -> None:
    report = make_noisy(png_dataset, tmp_path / "out", mode, rate=0.3, radius=(1, 3), seed=2)
    counts = count_by_hand([(read(c["label_clean"]), read(c["label"])) for c in report["cases"]])
    assert report["overall"]["confusion"] == counts.tolist()
    np.testing.assert_allclose(report["overall"]["transition"], counts / counts.sum(axis=1, keepdims=True))
    assert counts.sum() == sum(c["num_pixels"] for c in report["cases"])
    assert (report["settings"]["transition_expected"] is None) == (mode == "morph")  # morph: not class-conditional


def test_report_transition_symmetric_half_on_a_big_map(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_bad_label(root, "big.png", np.random.default_rng(0).integers(0, 4, (256, 256)).astype(np.uint8))
    datalist = write_datalist(root, [{"image": "images/big.png", "label": "labels/big.png"}])
    report = make_noisy(datalist, tmp_path / "out", "symmetric", rate=0.5, seed=1)
    expected = np.full((4, 4), 0.5 / 3) + np.eye(4) * (0.5 - 0.5 / 3)
    np.testing.assert_allclose(report["settings"]["transition_expected"], expected)
    np.testing.assert_allclose(report["overall"]["transition"], expected, atol=0.02)


def test_transition_mode_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "data"
    write_bad_label(root, "big.png", np.random.default_rng(1).integers(0, 4, (200, 200)).astype(np.uint8))
    datalist = write_datalist(root, [{"image": "images/big.png", "label": "labels/big.png"}])
    report = run(datalist, tmp_path / "out", "--mode", "transition", "--transition", TRANSITION)
    matrix = json.loads(TRANSITION)
    assert report["settings"]["transition"] == report["settings"]["transition_expected"] == matrix
    np.testing.assert_allclose(report["overall"]["transition"], matrix, atol=0.02)
    assert np.array(report["overall"]["confusion"])[np.array(matrix) == 0].sum() == 0
    capsys.readouterr()
    options = ["--datalist", str(datalist), "--out", str(tmp_path / "other")]
    assert main([*options, "--mode", "symmetric", "--transition", TRANSITION]) == 1  # only for mode transition
    assert "only used by mode 'transition'" in capsys.readouterr().err
    assert main([*options, "--mode", "transition", "--transition", "[[1, 0], [0, 1]]"]) == 1
    assert "4 x 4 transition" in capsys.readouterr().err
    assert main([*options, "--mode", "symmetric", "--rate", "0.1", "0.2"]) == 1
    assert "4 per-class rates" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main([*options, "--mode", "transition", "--transition", "[[1, 0], [0, 1"])
    assert exit_info.value.code == 2 and "JSON" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


# ---- no input is ever modified ----


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (symlinks not followed) and its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def refuse(datalist: Path, out: Path, match: str, capsys: pytest.CaptureFixture, *options: str) -> None:
    """make_noisy and the command line refuse ``out`` with a message matching ``match``; nothing is written."""
    before = snapshot(datalist.parent.parent)
    with pytest.raises(ValueError, match=match):
        make_noisy(datalist, out, "symmetric", overwrite="--overwrite" in options)
    capsys.readouterr()
    assert main(["--datalist", str(datalist), "--out", str(out), "--mode", "symmetric", *options]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and "Traceback" not in captured.err and captured.out == ""
    assert re.search(match, captured.err)
    assert snapshot(datalist.parent.parent) == before  # not one byte written, under the data or next to it


def test_refuses_output_over_the_training_folder_layout(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """X/training/datalist.json with --out X used to write the noisy labels over X/training/labels (issue 12)."""
    root = tmp_path / "X"
    datalist = write_png_dataset(root / "training")
    labels = {p: p.read_bytes() for p in (root / "training" / "labels").rglob("*.png")}
    assert len(labels) == 4
    refuse(datalist, root, r"output folder .*X .*contains the input folder .*X/training", capsys)
    assert {p: p.read_bytes() for p in labels} == labels


def test_refuses_the_input_folder_and_a_rerun_into_it(png_dataset: Path, capsys: pytest.CaptureFixture) -> None:
    root = png_dataset.parent
    refuse(png_dataset, root, r"output folder .*data .*is the input folder", capsys)
    refuse(png_dataset, root, r"is the input folder", capsys, "--overwrite")  # --overwrite never allows it


@pytest.mark.parametrize(
    "out, match",
    [
        ("data/noisy", "lies inside the input folder"),
        ("data/labels/sub/deeper", "lies inside the input folder"),
        ("data/images", "is the input folder"),
        (".", "contains the input folder"),
        ("ext", "is the input folder"),  # the folder of a label outside the datalist's folder
        ("ext/noisy", "lies inside the input folder"),
    ],
)
def test_refuses_output_in_or_around_the_input_data(
    png_dataset: Path, tmp_path: Path, out: str, match: str, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "ext").mkdir()
    Image.fromarray(label_2d(1)).save(tmp_path / "ext" / "e.png")
    content = json.loads(png_dataset.read_text())
    content["training"].append({"image": "images/e.png", "label": "../ext/e.png"})
    png_dataset.write_text(json.dumps(content))
    refuse(png_dataset, tmp_path / out, match, capsys)
    assert not (tmp_path / "data" / "noisy").exists() and not (tmp_path / "ext" / "noisy").exists()


def test_refuses_a_symlink_to_the_input_data(png_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "link").symlink_to(png_dataset.parent, target_is_directory=True)
    refuse(png_dataset, tmp_path / "link", r"output folder .*link \(resolved .*data\) is the input folder", capsys)
    (tmp_path / "out").mkdir()  # an output folder whose 'training' folder is a symlink to the input data
    (tmp_path / "out" / "training").symlink_to(png_dataset.parent, target_is_directory=True)
    refuse(png_dataset, tmp_path / "out", r"resolves to .*data/labels/a\.png, the input file", capsys, "--overwrite")
    (tmp_path / "out" / "training").unlink()  # an output file that is a symlink to an input label elsewhere
    (tmp_path / "out" / "datalist.json").symlink_to(png_dataset)
    refuse(
        png_dataset, tmp_path / "out", r"out/datalist\.json resolves to .*data/datalist\.json", capsys, "--overwrite"
    )


def test_non_empty_output_needs_overwrite(png_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    first = make_noisy(png_dataset, out, "symmetric", seed=1)
    written = snapshot(out)
    refuse(png_dataset, out, r"output folder .*out is not empty .*--overwrite", capsys)
    assert snapshot(out) == written
    (tmp_path / "empty").mkdir()
    assert make_noisy(png_dataset, tmp_path / "empty", "symmetric", seed=1)["overall"] == first["overall"]
    again = run(png_dataset, out, "--mode", "symmetric", "--seed", "2", "--overwrite")
    assert again["settings"]["seed"] == 2 and snapshot(out) != written
    assert make_noisy(png_dataset, out, "symmetric", seed=1, overwrite=True) == first  # reruns reproduce the run
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="file exists and is not a folder"):
        make_noisy(png_dataset, tmp_path / "file", "symmetric", overwrite=True)
