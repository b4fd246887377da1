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
"""Tests of scripts/data.py on real files: PNG, JPG, NIfTI 2D/3D, DICOM files and a DICOM series folder."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, EnsureChannelFirstd, LoadImage, SaveImage, SqueezeDimd
from PIL import Image
from pydicom.data import get_testdata_file
from scripts.data import CheckImageLabeld, LoadImageByFormatd, list_images, load_datalist, reader_name

H, W = 20, 30  # PNG frames: H rows, W columns; MONAI loads them as W x H


def label_2d() -> np.ndarray:
    """(H, W) map with classes 0..3, asymmetric under flips and transposition."""
    label = np.zeros((H, W), dtype=np.uint8)
    label[2:6, 3:12] = 1
    label[10:18, 4:8] = 2
    label[12, 20:27] = 3
    return label


def rgb_2d() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


def write_series(folder: Path, num_slices: int = 4) -> np.ndarray:
    """CT_small slices with new positions, UIDs and a marker pixel (slice k: 10 k); files named in reverse order.

    Returns the expected (128, 128, num_slices) volume in MONAI's (column, row, slice) order, in HU.
    """
    folder.mkdir()
    source = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    x0, y0, z0 = (float(v) for v in source.ImagePositionPatient)
    volume = []
    for k in range(num_slices):
        ds = copy.deepcopy(source)
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [x0, y0, z0 + 2.0 * k]
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        pixels = source.pixel_array.copy()
        pixels[0, 0] = 10 * k
        ds.PixelData = pixels.tobytes()
        ds.save_as(folder / f"slice_{num_slices - k:02d}.dcm")
        volume.append(pixels.T * float(ds.RescaleSlope) + float(ds.RescaleIntercept))
    return np.stack(volume, axis=-1)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    f = {name: root / name for name in ("rgb.png", "grey.png", "rgb.jpg", "rgba.png", "label.png", "label_rgb.png")}
    Image.fromarray(rgb_2d()).save(f["rgb.png"])
    Image.fromarray(rgb_2d()).save(f["rgb.jpg"], quality=95)
    Image.fromarray(rgb_2d()[..., 0]).save(f["grey.png"])
    Image.fromarray(np.dstack([rgb_2d(), np.full((H, W), 255, np.uint8)])).save(f["rgba.png"])
    Image.fromarray(label_2d()).save(f["label.png"])
    Image.fromarray(np.dstack([label_2d()] * 3)).save(f["label_rgb.png"])
    for dims, shape in (("2d.nii.gz", (24, 18)), ("3d.nii", (24, 18, 6))):
        values = np.arange(np.prod(shape)).reshape(shape)
        f["image" + dims], f["label" + dims] = root / ("image" + dims), root / ("label" + dims)
        nib.save(nib.Nifti1Image(values.astype(np.float32), np.eye(4)), f["image" + dims])
        nib.save(nib.Nifti1Image((values % 4).astype(np.uint8), np.eye(4)), f["label" + dims])
    for name in ("CT_small.dcm", "MR_small.dcm"):
        f[name] = Path(get_testdata_file(name))
    f["series"] = root / "series"
    np.save(root / "series_volume.npy", write_series(f["series"]))
    f["series_volume"] = root / "series_volume.npy"
    return f


def pipeline(keys: tuple[str, ...], **check: Any) -> Compose:
    return Compose([LoadImageByFormatd(keys), EnsureChannelFirstd(keys), CheckImageLabeld(keys, **check)])


READER_CASES = [  # file, reader, expected image shape after EnsureChannelFirstd, image_channels
    ("rgb.png", "PILReader", (3, W, H), 3),
    ("rgb.jpg", "PILReader", (3, W, H), 3),
    ("grey.png", "PILReader", (1, W, H), 1),
    ("image2d.nii.gz", "NibabelReader", (1, 24, 18), 1),
    ("image3d.nii", "NibabelReader", (1, 24, 18, 6), 1),
    ("CT_small.dcm", "ITKReader", (1, 128, 128, 1), 1),
    ("MR_small.dcm", "ITKReader", (1, 64, 64, 1), 1),
    ("series", "ITKReader", (1, 128, 128, 4), 1),
]


@pytest.mark.parametrize("name, reader, shape, channels", READER_CASES)
def test_reader_per_format(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, name: str, reader: str, shape: tuple, channels: int
) -> None:
    monkeypatch.delenv("MONAI_DICOM_READER", raising=False)
    assert reader_name(files[name]) == reader
    default = next(r for r in LoadImage().readers[::-1] if r.verify_suffix((str(files[name]),)))
    assert type(default).__name__ == reader  # MONAI's own dispatch agrees with the table
    out = pipeline(("image",), num_classes=4, image_channels=channels)({"image": str(files[name])})
    assert tuple(out["image"].shape) == shape
    assert out["image"].meta["filename_or_obj"] == str(files[name])


def test_png_values_and_orientation(files: dict[str, Path], tmp_path: Path) -> None:
    out = pipeline(("image", "label"), num_classes=4, image_channels=3)(
        {"image": str(files["rgb.png"]), "label": str(files["label.png"])}
    )
    np.testing.assert_array_equal(out["image"].numpy(), rgb_2d().transpose(2, 1, 0))
    np.testing.assert_array_equal(out["label"][0].numpy(), label_2d().T)  # same W x H swap as the image
    saver = SaveImage(tmp_path, output_ext=".png", output_dtype=np.uint8, separate_folder=False, resample=False)
    saver(out["label"])
    written = np.asarray(Image.open(tmp_path / "label_trans.png"))
    np.testing.assert_array_equal(written, label_2d())  # a saved prediction overlays the input frame


def test_palette_label_reads_indices(tmp_path: Path) -> None:
    palette = Image.fromarray(label_2d()).convert("P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    palette.save(tmp_path / "label.png")
    out = LoadImageByFormatd("label", ensure_channel_first=True)({"label": str(tmp_path / "label.png")})
    np.testing.assert_array_equal(out["label"][0].numpy(), label_2d().T)


def test_nifti_values(files: dict[str, Path]) -> None:
    out = pipeline(("image", "label"), num_classes=4)(
        {"image": str(files["image3d.nii"]), "label": str(files["label3d.nii"])}
    )
    expected = np.arange(24 * 18 * 6, dtype=np.float32).reshape(24, 18, 6)
    np.testing.assert_array_equal(out["image"][0].numpy(), expected)
    np.testing.assert_array_equal(out["label"][0].numpy(), expected % 4)


def test_dicom_file_values_and_2d(files: dict[str, Path]) -> None:
    source = pydicom.dcmread(files["CT_small.dcm"])
    hu = source.pixel_array.T * float(source.RescaleSlope) + float(source.RescaleIntercept)
    keys = ("image",)
    squeeze = Compose([LoadImageByFormatd(keys), EnsureChannelFirstd(keys), SqueezeDimd(keys, dim=-1)])
    out = CheckImageLabeld(keys, num_classes=2, spatial_dims=2)(squeeze({"image": str(files["CT_small.dcm"])}))
    assert tuple(out["image"].shape) == (1, 128, 128)
    np.testing.assert_allclose(out["image"][0].numpy(), hu)


def test_dicom_series_is_a_sorted_volume(files: dict[str, Path]) -> None:
    out = pipeline(("image",), num_classes=2, spatial_dims=3)({"image": str(files["series"])})
    np.testing.assert_allclose(out["image"][0].numpy(), np.load(files["series_volume"]))
    assert float(out["image"].affine[2, 2]) == pytest.approx(2.0)  # slice spacing from the positions


def test_dicom_without_suffix_and_env_override(files: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    bare = tmp_path / "1.2.840.10008.999"
    bare.write_bytes(files["CT_small.dcm"].read_bytes())
    assert reader_name(bare) == "ITKReader"
    monkeypatch.setenv("MONAI_DICOM_READER", "pydicom")  # makes MONAI's default dispatch read PNGs with pydicom
    out = LoadImageByFormatd(("image", "label"))({"image": str(files["rgb.png"]), "label": str(bare)})
    assert tuple(out["image"].shape) == (W, H, 3) and tuple(out["label"].shape) == (128, 128, 1)


def test_label_absent_at_inference(files: dict[str, Path]) -> None:
    keys = ("image", "label")
    load = Compose(
        [LoadImageByFormatd(keys, allow_missing_keys=True), EnsureChannelFirstd(keys, allow_missing_keys=True)]
    )
    out = CheckImageLabeld(keys, num_classes=4, image_channels=3)(load({"image": str(files["rgb.png"])}))
    assert "label" not in out


def test_ignore_index_allowed(tmp_path: Path) -> None:
    label = label_2d()
    label[0, :5] = 255
    Image.fromarray(label).save(tmp_path / "label.png")
    data = {"image": str(tmp_path / "label.png"), "label": str(tmp_path / "label.png")}
    out = pipeline(("image", "label"), num_classes=4, ignore_index=255)(data)
    assert int((out["label"] == 255).sum()) == 5  # the ignored pixels pass through unchanged
    with pytest.raises(RuntimeError) as error:  # without ignore_index, 255 is refused, naming the file
        pipeline(("image", "label"), num_classes=4)(data)
    expected = r"label '.*label\.png': label values must be in 0\.\.3 \(num_classes=4\), got \[255\]"
    assert re.search(expected, str(error.value.__cause__))


# ---- bad inputs: the error (or its cause, inside Compose) names the file ----


def error_text(error: BaseException) -> str:
    """Messages of the error and its causes (Compose wraps a transform's error in 'applying transform ...')."""
    parts = []
    while error is not None:
        parts.append(f"{type(error).__name__}: {error}")
        error = error.__cause__
    return "\n".join(parts)


def _truncate(fraction: float) -> Callable[[Path, Path], Path]:
    def make(source: Path, folder: Path) -> Path:
        target = folder / ("cut_" + source.name)
        data = source.read_bytes()
        target.write_bytes(data[: int(len(data) * fraction)])
        return target

    return make


def _garbage(suffix: str) -> Callable[[Path, Path], Path]:
    def make(source: Path, folder: Path) -> Path:
        target = folder / f"garbage{suffix}"
        target.write_bytes(b"not an image " * 40)
        return target

    return make


UNREADABLE_CASES = [  # source file, how to break it, expected error type, words in the message
    ("rgb.png", _truncate(0.05), RuntimeError, "cannot read image"),
    ("rgb.png", _truncate(0.6), RuntimeError, "cannot read image"),
    ("rgb.jpg", _garbage(".jpg"), RuntimeError, "cannot read image"),
    ("image3d.nii", _truncate(0.5), RuntimeError, "cannot read image"),
    ("image2d.nii.gz", _truncate(0.5), RuntimeError, "cannot read image"),
    ("image3d.nii", _garbage(".nii"), RuntimeError, "cannot read image"),
    ("CT_small.dcm", _truncate(0.3), RuntimeError, "cannot read image"),
    ("CT_small.dcm", _garbage(".dcm"), RuntimeError, "cannot read image"),
    ("rgb.png", _garbage(".xyz"), ValueError, "unsupported image format"),
    ("rgb.png", lambda source, folder: folder / "missing.png", FileNotFoundError, "not found"),
]


@pytest.mark.parametrize("name, breaker, error, words", UNREADABLE_CASES)
def test_unreadable_file_is_named(
    files: dict[str, Path], tmp_path: Path, name: str, breaker: Callable, error: type, words: str
) -> None:
    bad = breaker(files[name], tmp_path)
    with pytest.raises(error, match=words) as direct:
        LoadImageByFormatd("image")({"image": str(bad)})
    assert str(bad) in str(direct.value)
    with pytest.raises(RuntimeError) as wrapped:
        pipeline(("image",), num_classes=4)({"image": str(bad)})
    assert str(bad) in error_text(wrapped.value)


def _nan_image(folder: Path) -> Path:
    image = np.ones((24, 18), np.float32)
    image[3, 4] = np.nan
    nib.save(nib.Nifti1Image(image, np.eye(4)), folder / "nan.nii.gz")
    return folder / "nan.nii.gz"


def _bad_values(folder: Path) -> Path:
    label = label_2d()
    label[0, 0], label[1, 1] = 7, 4
    Image.fromarray(label).save(folder / "bad_values.png")
    return folder / "bad_values.png"


BAD_PAIR_CASES = [  # image, label, CheckImageLabeld arguments, file named, words in the message
    ("rgb.png", "label2d.nii.gz", {}, "label2d.nii.gz", r"spatial size \(24, 18\) differs from image .*rgb.png"),
    ("rgb.png", _bad_values, {}, "bad_values.png", r"got \[4, 7\] in 2 voxels"),
    ("rgb.png", _bad_values, {"ignore_index": 7}, "bad_values.png", r"0\.\.3 or 7 .*got \[4\]"),
    ("rgb.png", "label_rgb.png", {}, "label_rgb.png", "one channel, got shape"),
    ("rgba.png", "label.png", {"image_channels": 3}, "rgba.png", "expected 3 image channels, got 4"),
    ("grey.png", "label.png", {"image_channels": 3}, "grey.png", "expected 3 image channels, got 1"),
    ("CT_small.dcm", None, {"spatial_dims": 2}, "CT_small.dcm", "2 spatial dims, got shape"),
    (_nan_image, None, {}, "nan.nii.gz", "NaN"),
]


@pytest.mark.parametrize("image, label, check, named, words", BAD_PAIR_CASES)
def test_check_image_label_errors(
    files: dict[str, Path], tmp_path: Path, image: Any, label: Any, check: dict, named: str, words: str
) -> None:
    def path(item: Any) -> str:
        if callable(item):
            return str(item(tmp_path))
        return str(files[item])

    data = {"image": path(image)} | ({} if label is None else {"label": path(label)})
    with pytest.raises(RuntimeError) as wrapped:
        pipeline(("image", "label") if label else ("image",), num_classes=4, **check)(data)
    cause = wrapped.value.__cause__
    assert isinstance(cause, ValueError)
    assert named in str(cause)
    assert re.search(words, str(cause)), str(cause)


def test_non_integer_label_values() -> None:
    image = torch.zeros(1, 4, 4)
    label = torch.zeros(1, 4, 4)
    label[0, 0, 0] = 0.5
    with pytest.raises(ValueError, match=r"got \[0\.5\] in 1 voxels"):
        CheckImageLabeld(num_classes=4)({"image": image, "label": label})


def test_nan_label_values_are_listed_once() -> None:
    """NaN != NaN, so torch.unique used to list each NaN voxel: ten 'nan' for ten voxels."""
    label = torch.zeros(1, 4, 4)
    label[0, :3] = float("nan")
    label[0, 3, 0] = 7.0
    with pytest.raises(ValueError, match=r"got \[7, nan\] in 13 voxels$"):
        CheckImageLabeld(num_classes=4)({"image": torch.zeros(1, 4, 4), "label": label})


@pytest.mark.parametrize(
    "min_size, shape, ok",
    [
        ((16, 16), (3, 16, 20), True),
        ((16, 16), (3, 1, 1), False),
        ((16, 16), (3, 15, 300), False),
        (16, (3, 300, 15), False),
        ((1, 1), (3, 1, 1), True),  # a sliding window pads the input: nothing is too small
        (None, (3, 1, 1), True),
    ],
)
def test_inputs_too_small_for_the_network_are_named(min_size: Any, shape: tuple, ok: bool) -> None:
    image = MetaTensor(torch.zeros(shape), meta={"filename_or_obj": "/data/frames/tiny.png"})
    check = CheckImageLabeld("image", num_classes=4, min_size=min_size)
    if ok:
        check({"image": image})
        return
    smallest = [min_size] * 2 if isinstance(min_size, int) else list(min_size)
    with pytest.raises(ValueError) as info:
        check({"image": image})
    assert str(info.value) == (
        f"image '/data/frames/tiny.png': spatial size {shape[1:]} is smaller than the network takes: expected at least "
        f"{smallest} (min_input_size: the UNet's total downsampling, the product of unet_strides)"
    )


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"num_classes": 4, "min_size": 0}, "min_size a positive int"),
        ({"num_classes": 4, "min_size": []}, "min_size a positive int"),
        ({"num_classes": 0}, "num_classes >= 1"),
        ({"num_classes": 4, "image_channels": 0}, "image_channels >= 1"),
        ({"num_classes": 4, "ignore_index": 2}, "outside the classes"),
        ({"num_classes": 4, "spatial_dims": 4}, "spatial_dims"),
    ],
)
def test_check_image_label_bad_arguments(kwargs: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        CheckImageLabeld(**kwargs)


# ---- load_datalist ----


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    for name in ("a.png", "a_label.png", "a_clean.png", "b.png", "b_label.png", "t.png"):
        Image.fromarray(label_2d()).save(tmp_path / name)
    return tmp_path


def write(root: Path, content: Any, name: str = "datalist.json") -> Path:
    path = root / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_load_datalist_resolves_paths(dataset: Path) -> None:
    content = {
        "description": "toy",
        "training": [
            {"image": "a.png", "label": "a_label.png", "label_clean": "a_clean.png"},
            {"image": "b.png", "label": "b_label.png"},
        ],
        "test": ["t.png"],
    }
    path = write(dataset, content)
    training = load_datalist(path, require_label=True)
    assert training[0] == {
        "image": str(dataset / "a.png"),
        "label": str(dataset / "a_label.png"),
        "label_clean": str(dataset / "a_clean.png"),
    }
    assert load_datalist(path, "test") == [{"image": str(dataset / "t.png")}]
    sub = dataset / "lists"
    sub.mkdir()
    assert load_datalist(write(sub, content), base_dir=dataset)[1]["label"] == str(dataset / "b_label.png")


GOOD = {"image": "a.png", "label": "a_label.png"}
DATALIST_ERRORS = [  # content (None: no file), load_datalist arguments, error, words
    (None, {}, FileNotFoundError, "datalist file not found"),
    ('{"training": [', {}, ValueError, "is not valid JSON"),
    ([GOOD], {}, ValueError, "expected a JSON object"),
    ({"validation": [GOOD]}, {}, ValueError, r"key 'training': no such key; lists in the file: \['validation'\]"),
    ({"training": GOOD}, {}, ValueError, "expected a list of entries, got dict"),
    ({"training": []}, {}, ValueError, "key 'training': the list is empty"),
    ({"training": [GOOD, {"label": "a.png"}]}, {}, ValueError, "entry 1 has no 'image'"),
    ({"training": ["a.png"]}, {}, ValueError, "entry 0 has no 'image'"),
    ({"training": [{"image": "a.png"}]}, {"require_label": True}, ValueError, "entry 0 has no 'label' \\(required\\)"),
    ({"training": [GOOD, {"image": "nope.png"}]}, {}, FileNotFoundError, "entry 1: image not found: .*nope.png"),
    ({"training": [{"image": "a.png", "label": "no.png"}]}, {}, FileNotFoundError, "label not found: .*no.png"),
    ({"training": [{"image": ["a.png", "x.png"]}]}, {}, FileNotFoundError, "image not found: .*x.png"),
]


@pytest.mark.parametrize("content, kwargs, error, words", DATALIST_ERRORS)
def test_load_datalist_errors(dataset: Path, content: Any, kwargs: dict, error: type, words: str) -> None:
    path = dataset / "datalist.json" if content is None else write(dataset, content)
    with pytest.raises(error, match=words) as raised:
        load_datalist(path, **kwargs)
    assert str(path) in str(raised.value)


def test_load_datalist_skips_file_check(dataset: Path) -> None:
    path = write(dataset, {"training": [{"image": "later.png"}]})
    assert load_datalist(path, check_files=False) == [{"image": str(dataset / "later.png")}]


def test_reader_override_has_no_fallback(files: dict[str, Path]) -> None:
    nifti = str(files["image2d.nii.gz"])
    assert tuple(LoadImageByFormatd("image", reader="ITKReader")({"image": nifti})["image"].shape) == (24, 18)
    with pytest.raises(RuntimeError, match="cannot read image .*image2d.nii.gz.* with PILReader"):
        LoadImageByFormatd("image", reader="PILReader")({"image": nifti})
    with pytest.raises(ValueError, match="expected reader in"):
        LoadImageByFormatd("image", reader="NoSuchReader")
    with pytest.raises(ValueError, match="image_only=True only"):
        LoadImageByFormatd("image", image_only=False)


def test_list_images(dataset: Path) -> None:
    assert list_images(dataset, "?.png") == [{"image": str(dataset / f"{c}.png")} for c in "abt"]
    with pytest.raises(ValueError, match=f"no images match 'x\\*' in '{dataset}'"):
        list_images(dataset, "x*")
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        list_images(dataset / "missing")
