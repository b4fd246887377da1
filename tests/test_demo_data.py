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
"""Tests of scripts/demo_data.py: determinism, plausible frames and labels, datalist layout, safe (re)generation."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scripts.demo_data as demo
from monai.transforms import Compose, EnsureChannelFirstd
from PIL import Image
from scripts.data import CheckImageLabeld, LoadImageByFormatd, load_datalist
from scripts.demo_data import ensure_demo_dataset, make_demo_dataset, render_frame, save_preview

SMALL = {"num_train": 4, "num_val": 2, "num_test": 2}


def read(path: Path | str) -> np.ndarray:
    return np.asarray(Image.open(path))


def arrays(root: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(root)): read(p) for p in sorted(root.rglob("*.png"))}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "data"
    make_demo_dataset(root, **SMALL)
    return root


@pytest.fixture(scope="module")
def frames() -> list[tuple[np.ndarray, np.ndarray]]:
    return [render_frame(np.random.default_rng([0, 0, i])) for i in range(24)]


def test_render_frame_is_deterministic() -> None:
    first, second = render_frame(np.random.default_rng(7)), render_frame(np.random.default_rng(7))
    assert first[0].tobytes() == second[0].tobytes() and first[1].tobytes() == second[1].tobytes()
    assert render_frame(np.random.default_rng(8))[0].tobytes() != first[0].tobytes()


def test_dataset_is_deterministic(dataset: Path, tmp_path: Path) -> None:
    make_demo_dataset(tmp_path / "same", **SMALL)
    make_demo_dataset(tmp_path / "fewer", num_train=2, num_val=1, num_test=1)
    make_demo_dataset(tmp_path / "other", **SMALL, seed=1)
    reference = arrays(dataset)
    same, fewer, other = (arrays(tmp_path / name) for name in ("same", "fewer", "other"))
    assert same.keys() == reference.keys()
    assert all(same[k].tobytes() == reference[k].tobytes() for k in reference)
    assert all(fewer[k].tobytes() == reference[k].tobytes() for k in fewer)  # a case does not depend on the counts
    assert other["images/training_000.png"].tobytes() != reference["images/training_000.png"].tobytes()
    assert json.loads((tmp_path / "same/datalist.json").read_text()) == json.loads(
        (dataset / "datalist.json").read_text()
    )


@pytest.mark.parametrize("size", [(128, 160), (96, 64)])
def test_frame_format(size: tuple[int, int]) -> None:
    image, label = render_frame(np.random.default_rng(3), size)
    assert image.shape == (*size, 3) and image.dtype == np.uint8
    assert label.shape == size and label.dtype == np.uint8
    assert set(np.unique(label)) <= {0, 1, 2, 3}


def test_class_presence_and_fractions(frames: list[tuple[np.ndarray, np.ndarray]]) -> None:
    fractions = np.array([[np.mean(label == c) for c in range(4)] for _, label in frames])
    assert np.mean((fractions > 0).all(axis=1)) >= 0.9  # all four classes in most frames
    mean = fractions.mean(axis=0)
    assert 0.75 < mean[0] < 0.95 and 0.04 < mean[1] < 0.2
    assert 0.01 < mean[2] < 0.08 and 0.01 < mean[3] < 0.08
    assert (fractions[:, 1:].sum(axis=1) > 0.02).all()


def test_classes_are_not_separable_by_brightness(frames: list[tuple[np.ndarray, np.ndarray]]) -> None:
    grey = {c: np.concatenate([image.mean(-1)[label == c] for image, label in frames]) for c in range(4)}
    ranges = {c: np.percentile(v, [10, 90]) for c, v in grey.items()}
    for a in range(4):
        for b in range(a + 1, 4):
            assert max(ranges[a][0], ranges[b][0]) < min(ranges[a][1], ranges[b][1]), (a, b, ranges)
    tissue = np.concatenate([image[label == 0] for image, label in frames]).mean(axis=0)
    assert tissue[0] > 1.5 * tissue[2]  # reddish background


def test_datalist_layout(dataset: Path) -> None:
    content = json.loads((dataset / "datalist.json").read_text())
    assert content["num_classes"] == 4
    assert content["labels"] == {"0": "background", "1": "shaft", "2": "wrist", "3": "clasper"}
    assert "description" in content and content["generator"]["noise"] == "ellipse"
    assert [len(content[k]) for k in ("training", "validation", "test")] == [4, 2, 2]
    assert set(content["training"][0]) == {"image", "label", "label_clean"}
    assert all(set(e) == {"image", "label"} for e in content["validation"] + content["test"])
    paths = [p for split in ("training", "validation", "test") for e in content[split] for p in e.values()]
    assert not any(os.path.isabs(p) for p in paths)
    assert all(p.startswith("labels/") for e in content["validation"] + content["test"] for p in [e["label"]])
    for split in ("training", "validation", "test"):
        keys = ("image", "label", "label_clean") if split == "training" else ("image", "label")
        check = Compose(
            [
                LoadImageByFormatd(keys),
                EnsureChannelFirstd(keys),
                CheckImageLabeld(keys, num_classes=4, image_channels=3),
            ]
        )
        for item in load_datalist(dataset / "datalist.json", split, require_label=True):
            loaded = check(item)
            assert tuple(loaded["image"].shape) == (3, 160, 128)


def test_noisy_labels_differ_for_ellipse(dataset: Path) -> None:
    content = json.loads((dataset / "datalist.json").read_text())
    for entry in content["training"]:
        noisy, clean = read(dataset / entry["label"]), read(dataset / entry["label_clean"])
        assert noisy.dtype == np.uint8 and set(np.unique(noisy)) <= {0, 1, 2, 3}
        assert 0.0 < np.mean(noisy != clean) < 0.3
    assert 0.0 < content["noise_rates"]["pixel"] < 0.3


@pytest.mark.parametrize(
    "noise, kwargs, low, high",
    [
        (None, {}, 0.0, 0.0),
        ("none", {}, 0.0, 0.0),
        ("morph", {}, 0.01, 0.3),
        ("symmetric", {"rate": 0.3}, 0.27, 0.33),
        ("asymmetric", {}, 0.47, 0.53),
    ],
)
def test_noise_modes(tmp_path: Path, noise: str | None, kwargs: dict[str, Any], low: float, high: float) -> None:
    path = make_demo_dataset(tmp_path / "d", 2, 1, 1, size=(64, 80), noise=noise, noise_kwargs=kwargs)
    content = json.loads(Path(path).read_text())
    rates = [
        np.mean(read(tmp_path / "d" / e["label"]) != read(tmp_path / "d" / e["label_clean"]))
        for e in content["training"]
    ]
    assert low <= np.mean(rates) <= high
    assert content["noise_rates"]["pixel"] == pytest.approx(np.mean(rates))


def test_ensure_is_idempotent(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    path = ensure_demo_dataset(root, **SMALL)
    assert path == str(root / "datalist.json")
    stamp = os.stat(path).st_mtime_ns
    assert ensure_demo_dataset(root, **SMALL) == path
    assert os.stat(path).st_mtime_ns == stamp  # reused, not regenerated
    with pytest.raises(ValueError, match="was made with"):
        ensure_demo_dataset(root, **SMALL, noise="morph")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no temporary folders left


def test_ensure_after_lost_race(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = demo.make_demo_dataset

    def other_process_wins(out_dir: Path, *args: Any) -> str:
        real(out_dir, *args)  # another process renames its copy first ...
        raise OSError(39, "Directory not empty")  # ... so this one's rename fails

    monkeypatch.setattr(demo, "make_demo_dataset", other_process_wins)
    assert ensure_demo_dataset(tmp_path / "demo", **SMALL) == str(tmp_path / "demo" / "datalist.json")


def test_overwrite_and_existing_folder(dataset: Path, tmp_path: Path) -> None:
    root = tmp_path / "demo"
    make_demo_dataset(root, **SMALL)
    with pytest.raises(FileExistsError, match=str(root)):
        make_demo_dataset(root, **SMALL)
    make_demo_dataset(root, **SMALL, noise=None, overwrite=True)
    assert json.loads((root / "datalist.json").read_text())["generator"]["noise"] == "none"
    empty = tmp_path / "empty"
    empty.mkdir()
    make_demo_dataset(empty, **SMALL)  # an empty folder is fine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo", "empty"]


def test_interrupted_run_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fail_on_third(*args: Any) -> tuple[np.ndarray, np.ndarray]:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return render_frame(*args)

    monkeypatch.setattr(demo, "render_frame", fail_on_third)
    with pytest.raises(KeyboardInterrupt):
        ensure_demo_dataset(tmp_path / "demo", **SMALL)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"num_train": 0}, "at least one case"),
        ({"num_test": 0}, "at least one case"),
        ({"size": (16, 160)}, "at least 32 x 32"),
        ({"size": (64, 64, 64)}, "at least 32 x 32"),
        ({"noise": "gaussian"}, "expected noise"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        make_demo_dataset(tmp_path / "demo", **kwargs)
    assert not (tmp_path / "demo").exists()


def test_save_preview(dataset: Path, tmp_path: Path) -> None:
    path = save_preview(dataset, tmp_path / "docs" / "preview.png", n=3)
    figure = read(path)
    assert figure.ndim == 3 and figure.shape[0] > 300 and figure.shape[1] > 600
    assert figure[..., :3].std() > 20  # not blank


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    demo.main(["--out_dir", str(tmp_path / "d"), "--num_train", "2", "--num_val", "1", "--num_test", "1"])
    assert "wrote" in capsys.readouterr().out
    assert (tmp_path / "d" / "datalist.json").is_file()
