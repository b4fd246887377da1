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
"""``configs/clean_labels.json`` end to end: a model trained for two epochs on tiny data, then the cleaning of its
training split in 2D (PNG) and 3D (NIfTI through the 3D overlay), from another directory, and on two processes."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from scripts.config_check import ConfigError, reported_error

from tests.test_bundle import run, run_cli, run_multi_gpu, tiny_demo, workflow

pytestmark = pytest.mark.slow  # every test here trains a network first


CLASSES = ("background", "shaft", "wrist", "clasper")
CONFIGS_3D = ["train.json", "common_3d.json", "train_3d.json"]  # the 3D overlays in the README's order


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """Two epochs (one warm-up, one correction) on a tiny demo whose 8 training labels are noisy PNGs."""
    root = tmp_path_factory.mktemp("clean2d")
    override = tiny_demo(root)
    run(workflow(["train.json"], "train", **override))
    return {"root": root, "override": override}


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def _changed(given: np.ndarray, corrected: np.ndarray, classes: int) -> list[int]:
    return [int(((given == c) ^ (corrected == c)).sum()) for c in range(classes)]


@pytest.fixture(scope="module")
def cleaned(trained) -> dict:
    out = trained["root"] / "eval" / "clean_labels"
    run(workflow(["train.json", "clean_labels.json"], "eval", **trained["override"], clean_top_k=3))
    return {**trained, "out": out, "rows": _rows(out / "ranking.csv")}


def test_ranking_lists_every_training_case_most_suspect_first(cleaned):
    rows = cleaned["rows"]
    datalist = json.loads(Path(cleaned["override"]["datalist"]).read_text())
    assert sorted(r["case"] for r in rows) == sorted(e["image"] for e in datalist["training"])  # as in the datalist
    required = {"case", "rank", "score", "pair_score", "dice_given_corrected", "label", "corrected_label"}
    assert required | {f"score_{c}" for c in CLASSES} | {f"changed_{c}" for c in CLASSES} <= set(rows[0])
    assert [int(r["rank"]) for r in rows] == list(range(1, 9))
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
    assert all(0.0 <= float(r["dice_given_corrected"]) <= 1.0 for r in rows)
    summary = json.loads((cleaned["out"] / "summary.json").read_text())
    assert summary["transitions_source"].endswith("checkpoint_final.pt") and summary["num_cases"] == 8
    assert np.allclose(np.sum(summary["T_C"], axis=1), 1.0)


def test_corrected_pngs_keep_the_geometry_and_match_the_ranking(cleaned):
    """Each corrected label is a palette PNG of its given label's size; the changed areas the CSV reports are the
    pixels that differ between the two files (so the label was written in the file's own axis order)."""
    for row in cleaned["rows"]:
        given = np.asarray(Image.open(row["label"]))
        with Image.open(row["corrected_label"]) as png:
            assert png.mode == "P" and png.size == (given.shape[1], given.shape[0])
            corrected = np.asarray(png)
        assert corrected.max() < 4
        assert _changed(given, corrected, 4) == [int(row[f"changed_{c}"]) for c in CLASSES]
        assert Path(row["corrected_label"]).is_relative_to(cleaned["out"] / "labels")
    written = json.loads((cleaned["out"] / "datalist.json").read_text())
    assert {e["label"] for e in written["training"]} == {r["corrected_label"] for r in cleaned["rows"]}
    assert {e["label_given"] for e in written["training"]} == {r["label"] for r in cleaned["rows"]}
    assert len(written["test"]) == 4  # the other lists are kept


def test_pictures_and_report_of_the_top_cases(cleaned):
    pictures = sorted((cleaned["out"] / "pictures").glob("*.png"))
    assert [p.name[:4] for p in pictures] == ["001_", "002_", "003_"]
    for picture in pictures:
        with Image.open(picture) as png:
            assert png.width > 2.5 * png.height and len(set(png.convert("RGB").getdata())) > 50
    page = (cleaned["out"] / "report.html").read_text()
    assert page.count("<tr") == 9 and page.count("data:image/png;base64,") == 3  # header, 8 cases; 3 thumbnails
    assert all(f'href="pictures/{p.name}"' in page for p in pictures) and "<script" not in page


def test_without_learned_transitions_the_identity_is_used(trained, tmp_path, caplog):
    """A model whose training left no transitions (only ``model.pt``): T = I, and the log says so."""
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(trained["root"] / "models" / "model.pt", models)
    override = {**trained["override"], "ckpt_dir": str(models), "output_dir": str(tmp_path / "eval")}
    run(workflow(["train.json", "clean_labels.json"], "eval", **override, clean_top_k=0))
    summary = json.loads((tmp_path / "eval" / "clean_labels" / "summary.json").read_text())
    assert summary["transitions_source"] == "identity" and summary["T_C"] == np.eye(4).tolist()
    assert not (tmp_path / "eval" / "clean_labels" / "pictures").exists()


def test_refuses_to_write_among_the_input_data(trained):
    override = {**trained["override"], "clean_dir": str(Path(trained["override"]["dataset_dir"]) / "labels" / "x")}
    with pytest.raises(Exception) as error:
        workflow(["train.json", "clean_labels.json"], "eval", **override)
    reported = reported_error(error.value)
    assert isinstance(reported, ConfigError) and str(reported).startswith("clean_dir: expected a folder outside")


def test_runs_from_another_directory(trained, tmp_path):
    cwd = tmp_path / "project"
    cwd.mkdir()
    override = {**trained["override"], "clean_dir": str(tmp_path / "cleaned"), "clean_top_k": 1}
    run_cli(["train.json", "clean_labels.json"], override, cwd)
    assert len(_rows(tmp_path / "cleaned" / "ranking.csv")) == 8 and (tmp_path / "cleaned" / "report.html").is_file()


def test_two_processes_share_the_cases_and_merge_one_ranking(cleaned, tmp_path):
    """multi_gpu_clean_labels.json on two gloo processes: each writes its own cases' labels, process 0 the ranking,
    equal to the one of a single process."""
    override = {**cleaned["override"], "clean_dir": str(tmp_path / "multi"), "clean_top_k": 3}
    configs = ("train.json", "clean_labels.json", "multi_gpu_clean_labels.json")
    run_multi_gpu(override, cwd=tmp_path, configs=configs)
    multi = {r["case"]: r for r in _rows(tmp_path / "multi" / "ranking.csv")}
    single = {r["case"]: r for r in cleaned["rows"]}
    assert set(multi) == set(single)
    for case, row in single.items():
        assert (multi[case]["rank"], float(multi[case]["score"])) == (row["rank"], pytest.approx(float(row["score"])))
    assert len(list((tmp_path / "multi" / "pictures").glob("*.png"))) == 3
    assert len(list((tmp_path / "multi" / "labels").rglob("*.png"))) == 8


def test_clean_labels_3d_nifti_in_the_input_geometry(tmp_path):
    """The 3D overlay (spacing, orientation, sliding window) on rotated, anisotropic NIfTI scans: every corrected
    label has its given label's shape, affine and dtype, and the CSV's changed areas are the voxels that differ."""
    from tests.test_bundle_3d import OVERRIDE_3D, SCANS, write_scan

    data = tmp_path / "data"
    data.mkdir()
    entries = {name: write_scan(data, name, *spec) for name, spec in SCANS.items()}
    splits = {"training": ("iso", "thick", "tilted", "oblique"), "validation": ("val",), "test": ("fine",)}
    datalist = data / "datalist.json"
    datalist.write_text(json.dumps({split: [entries[n] for n in names] for split, names in splits.items()}))
    override = {
        **OVERRIDE_3D,
        "datalist": str(datalist),
        "dataset_dir": str(data),
        "ckpt_dir": str(tmp_path / "models"),
        "output_dir": str(tmp_path / "eval"),
        "max_epochs": 2,
        "warmup_epochs": 1,
    }
    run(workflow(CONFIGS_3D, "train", **override))
    run(workflow([*CONFIGS_3D, "clean_labels.json"], "eval", **override, clean_top_k=2))
    out = tmp_path / "eval" / "clean_labels"
    rows = _rows(out / "ranking.csv")
    assert sorted(r["case"] for r in rows) == sorted(entries[n]["image"] for n in splits["training"])
    names = ("background", "shell", "core")
    for row in rows:
        given, corrected = nib.load(row["label"]), nib.load(row["corrected_label"])
        assert corrected.shape == given.shape and corrected.get_data_dtype() == given.get_data_dtype()
        np.testing.assert_allclose(corrected.affine, given.affine, atol=1e-6)
        changed = _changed(np.asarray(given.dataobj), np.asarray(corrected.dataobj), 3)
        assert changed == [int(row[f"changed_{c}"]) for c in names]
    assert len(list((out / "pictures").glob("*.png"))) == 2 and (out / "report.html").is_file()
