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
"""Datalists, image loading with one reader per format, and image/label checks with errors that name the file.

Readers (MONAI's own; :func:`reader_name` is the table):

- PNG, JPG, BMP: ``PILReader``. Arrays come out W x H (MONAI swaps the two axes of 2D formats), the same way
  ``SaveImage``'s PNG writer swaps them back, so a saved prediction overlays its input frame; a 320 x 256 frame
  loads as ``(3, 320, 256)`` after ``EnsureChannelFirstd``, so spatial sizes are given as (width, height).
- NIfTI (``.nii``, ``.nii.gz``): ``NibabelReader``.
- DICOM (a ``.dcm`` file, a file with the DICOM magic bytes, or a series folder), MetaImage, NRRD: ``ITKReader``
  (GDCM decodes the compressed transfer syntaxes, sorts a series by position and marks RGB channels). A
  single-frame DICOM loads as W x H x 1: a 2D network needs ``SqueezeDimd(dim=-1)`` after ``EnsureChannelFirstd``.
- NumPy (``.npy``, ``.npz``): ``NumpyReader``.

:class:`LoadImageByFormatd` passes that reader to ``LoadImage`` explicitly. MONAI's default dispatch picks the
same readers, but (1) ``LoadImage(reader=X)`` silently falls back to the other readers when X fails, (2) with the
environment variable ``MONAI_DICOM_READER=pydicom`` the pydicom reader claims every file, PNGs included, and (3)
an unknown suffix goes to ITK, whose "Could not create IO object" does not say what is wrong.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import DtypeLike, KeysCollection, PathLike
from monai.data import ITKReader, NibabelReader, NumpyReader, PILReader, load_decathlon_datalist
from monai.data.image_reader import ImageReader
from monai.transforms import LoadImaged, MapTransform

__all__ = [
    "READERS",
    "CheckImageLabeld",
    "LoadImageByFormatd",
    "checked_labels",
    "image_reader",
    "list_images",
    "load_datalist",
    "reader_name",
]

READERS: dict[str, type[ImageReader]] = {
    "PILReader": PILReader,
    "NibabelReader": NibabelReader,
    "ITKReader": ITKReader,
    "NumpyReader": NumpyReader,
}
_SUFFIXES = {
    **dict.fromkeys((".png", ".jpg", ".jpeg", ".bmp"), "PILReader"),
    **dict.fromkeys((".nii", ".nii.gz"), "NibabelReader"),
    **dict.fromkeys((".dcm", ".dicom", ".mha", ".mhd", ".nrrd", ".nhdr"), "ITKReader"),
    **dict.fromkeys((".npy", ".npz"), "NumpyReader"),
}


def _is_dicom_file(path: Path) -> bool:
    """Whether ``path`` starts with the DICOM preamble: 128 bytes, then ``DICM``."""
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:] == b"DICM"
    except OSError:
        return False


def reader_name(path: PathLike) -> str:
    """Name (a key of :data:`READERS`) of the reader for one file or DICOM series folder.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: when the format is not supported.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"file not found: '{p}'")
    if p.is_dir():
        return "ITKReader"  # a DICOM series
    name = p.name.lower()
    suffix = ".nii.gz" if name.endswith(".nii.gz") else p.suffix.lower()
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    if _is_dicom_file(p):  # DICOM files are often named without suffix or with a UID
        return "ITKReader"
    supported = ", ".join(sorted(_SUFFIXES))
    raise ValueError(f"unsupported image format '{p}': expected one of {supported}, a DICOM file or a DICOM folder")


def image_reader(path: PathLike) -> ImageReader:
    """A new instance of the reader :func:`reader_name` picks for ``path``."""
    return READERS[reader_name(path)]()


class LoadImageByFormatd(LoadImaged):
    """``LoadImaged`` with one reader per format (see the module docstring) and errors that name the file.

    Each key's file is read by the reader :func:`reader_name` picks, with no fallback to other readers. A missing
    file raises ``FileNotFoundError``, an unsupported format ``ValueError``, and a file its reader cannot decode
    (corrupt, truncated, wrong suffix) ``RuntimeError``; each names the key and the file, and keeps the reader's
    own error as its cause. Inside a ``Compose`` (or a ``Dataset``) MONAI wraps every error in
    ``RuntimeError("applying transform ...")``; this error is its ``__cause__`` and shows in the traceback.

    Args:
        keys: keys of the file paths (a path, or a list of paths stacked as channels).
        reader: a reader instance, or a name in :data:`READERS`, used for every file instead of the table (no
            fallback either).
        dtype: data type of the loaded arrays.
        ensure_channel_first: move or add the channel axis first (as ``EnsureChannelFirstd``).
        allow_missing_keys: skip absent keys (e.g. ``label`` at inference).
        kwargs: other ``LoadImaged`` arguments, except ``image_only`` (always true: metadata is on the MetaTensor).
    """

    def __init__(
        self,
        keys: KeysCollection,
        reader: ImageReader | str | None = None,
        dtype: DtypeLike = np.float32,
        ensure_channel_first: bool = False,
        allow_missing_keys: bool = False,
        **kwargs: Any,
    ) -> None:
        if not kwargs.pop("image_only", True):
            raise ValueError("LoadImageByFormatd supports image_only=True only; the metadata is on the MetaTensor")
        if isinstance(reader, str):
            if reader not in READERS:
                raise ValueError(
                    f"expected reader in {sorted(READERS)}, an ImageReader instance or None, got {reader!r}"
                )
            reader = READERS[reader]()
        if reader is not None and not isinstance(reader, ImageReader):
            raise ValueError(f"expected an ImageReader instance or None for reader, got {type(reader).__name__}")
        super().__init__(
            keys,
            # every call passes its reader explicitly; one registered reader spares constructing MONAI's whole set
            reader=reader or PILReader(),
            dtype=dtype,
            image_only=True,
            ensure_channel_first=ensure_channel_first,
            allow_missing_keys=allow_missing_keys,
            **kwargs,
        )
        self.reader = reader
        self._readers: dict[str, ImageReader] = {}

    def _pick_reader(self, key: Hashable, files: Sequence[PathLike]) -> ImageReader:
        if self.reader is not None:
            return self.reader
        try:
            names = {reader_name(f) for f in files}
        except (FileNotFoundError, ValueError) as e:
            raise type(e)(f"cannot load {key}: {e}") from None
        if len(names) != 1:
            raise ValueError(f"cannot load {key}: files {list(map(str, files))} need different readers {names}")
        name = names.pop()
        if name not in self._readers:
            self._readers[name] = READERS[name]()
        return self._readers[name]

    def __call__(self, data: Mapping[Hashable, Any], reader: ImageReader | None = None) -> dict[Hashable, Any]:
        """Load every key's file(s); ``reader`` overrides the table for this call."""
        d = dict(data)
        for key in self.key_iterator(d):
            files = [d[key]] if isinstance(d[key], (str, os.PathLike)) else list(d[key])
            chosen = reader or self._pick_reader(key, files)
            try:
                d[key] = self._loader(d[key], chosen)
            except Exception as e:
                shown = str(files[0]) if len(files) == 1 else str([str(f) for f in files])
                raise RuntimeError(
                    f"cannot read {key} '{shown}' with {type(chosen).__name__} (corrupt, truncated, or not the "
                    f"format its name says?): {type(e).__name__}: {e}"
                ) from e
        return d


def _fail(path: Path, key: str, problem: str) -> ValueError:
    return ValueError(f"datalist '{path}', key '{key}': {problem}")


def load_datalist(
    path: PathLike,
    key: str = "training",
    base_dir: PathLike | None = None,
    require_label: bool = False,
    check_files: bool = True,
) -> list[dict[str, Any]]:
    """Load one list of a decathlon-style datalist JSON with ``monai.data.load_decathlon_datalist``, checked.

    Relative paths are resolved against ``base_dir`` (default: the datalist's folder). A ``"test"`` list may hold
    bare image paths (decathlon style); they become ``{"image": path}``.

    Args:
        path: the datalist JSON file.
        key: the list to load, e.g. ``"training"``, ``"validation"``, ``"test"``.
        base_dir: folder the relative paths are relative to.
        require_label: every entry must have a ``"label"``.
        check_files: every ``"image"`` and ``"label"`` path must exist (file or DICOM folder).

    Returns:
        The entries, with absolute ``image`` / ``label`` paths (other keys resolved when they name existing paths).

    Raises:
        FileNotFoundError: the datalist, or a listed image or label, does not exist.
        ValueError: invalid JSON, no list under ``key``, an empty list, or an entry without ``image`` (or
            ``label`` when required); the message names the datalist, the key and the entry.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"datalist file not found: '{path}'")
    try:
        content = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"datalist '{path}' is not valid JSON: {e}") from None
    if not isinstance(content, dict):
        raise ValueError(f"datalist '{path}': expected a JSON object at the top, got {type(content).__name__}")
    lists = sorted(k for k, v in content.items() if isinstance(v, list))
    if key not in content:
        raise _fail(path, key, f"no such key; lists in the file: {lists}")
    entries = content[key]
    if not isinstance(entries, list):
        raise _fail(path, key, f"expected a list of entries, got {type(entries).__name__}")
    if not entries:
        raise _fail(path, key, "the list is empty")
    for i, entry in enumerate(entries):
        if key == "test" and isinstance(entry, str) and not require_label:
            continue  # decathlon style: bare image paths
        if not isinstance(entry, dict) or "image" not in entry:
            raise _fail(path, key, f"entry {i} has no 'image': {entry!r}")
        if require_label and "label" not in entry:
            raise _fail(path, key, f"entry {i} has no 'label' (required): {entry!r}")
    items = load_decathlon_datalist(path, True, key, base_dir)
    if check_files:
        for i, item in enumerate(items):
            for k in ("image", "label"):
                for f in [item[k]] if isinstance(item.get(k), str) else item.get(k, []):
                    if not os.path.exists(f):
                        raise FileNotFoundError(f"datalist '{path}', key '{key}', entry {i}: {k} not found: '{f}'")
    return items


def list_images(directory: PathLike, pattern: str = "*") -> list[dict[str, str]]:
    """``[{"image": path}, ...]`` for the files (or DICOM folders) in ``directory`` matching ``pattern``, sorted.

    Raises:
        FileNotFoundError: ``directory`` does not exist.
        ValueError: nothing matches.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: '{folder}'")
    paths = sorted(p for p in folder.glob(pattern) if not p.name.startswith("."))
    if not paths:
        raise ValueError(f"no images match '{pattern}' in '{folder}'")
    return [{"image": str(p)} for p in paths]


def _name(data: Mapping[Hashable, Any], key: Hashable) -> str:
    """``key 'file'`` from the MetaTensor's (or the ``key_meta_dict``'s) ``filename_or_obj``."""
    meta = getattr(data[key], "meta", None) or data.get(f"{key}_meta_dict") or {}
    filename = meta.get("filename_or_obj")
    return f"{key} '{filename}'" if filename else f"{key} (file unknown)"


def _values(x: torch.Tensor, limit: int = 10) -> str:
    """The distinct values of ``x``, at most ``limit`` of them: ``[1.5, 7, nan]`` (NaN once, though NaN != NaN)."""
    nan = x.is_floating_point() and bool(torch.isnan(x).any())
    values = torch.unique(x[~torch.isnan(x)] if nan else x).tolist() + ([float("nan")] if nan else [])
    shown = [int(v) if float(v).is_integer() else float(v) for v in values[:limit]]
    return f"{shown}{' ...' if len(values) > limit else ''}"


def _holds(dtype: torch.dtype, value: int) -> bool:
    """Whether ``dtype`` can represent the integer ``value``."""
    if dtype.is_floating_point or dtype.is_complex:
        return True
    if dtype == torch.bool:
        return value in (0, 1)
    info = torch.iinfo(dtype)
    return info.min <= value <= info.max


def _check_label_values(d: Mapping[Hashable, Any], key: Hashable, num_classes: int, ignore_index: int | None) -> None:
    """Raise ``ValueError`` naming the file when ``d[key]`` holds a value other than 0..C-1 and ``ignore_index``."""
    label = torch.as_tensor(d[key])
    valid = (label >= 0) & (label < num_classes) & (label == torch.round(label))
    if ignore_index is not None and _holds(label.dtype, ignore_index):  # torch wraps -1 to 255 in uint8 comparisons
        valid |= label == ignore_index
    if not bool(valid.all()):
        bad = label[~valid]
        allowed = f"0..{num_classes - 1}" + ("" if ignore_index is None else f" or {ignore_index}")
        raise ValueError(
            f"{_name(d, key)}: label values must be in {allowed} (num_classes={num_classes}), "
            f"got {_values(bad)} in {bad.numel()} voxels"
        )


def checked_labels(
    datalist: Iterable[Mapping[str, Any]],
    loader: Callable[[Mapping[str, Any]], Mapping[Hashable, Any]],
    num_classes: int,
    ignore_index: int | None = None,
    key: str = "label",
) -> Iterator[torch.Tensor]:
    """The ``key`` map of each datalist entry, loaded by ``loader`` and checked as :class:`CheckImageLabeld` checks
    its values (0..C-1 or ``ignore_index``), for :func:`scripts.losses.class_prior`.

    Raises:
        ValueError: a value outside the classes, naming the file.
    """
    for entry in datalist:
        d = loader(entry)
        _check_label_values(d, key, num_classes, ignore_index)
        yield d[key]


class CheckImageLabeld(MapTransform):
    """Check a channel-first image and its label maps; raise ``ValueError`` naming the file and the problem.

    Run after ``EnsureChannelFirstd``. The first key is the image (``CH[WD]``), the others label maps
    (``1H[WD]``), absent labels are skipped (inference). Checks: image channel count, spatial dimensions, the
    smallest size the network takes, finite values; per label: one channel, the image's spatial size, values in
    0..C-1 or ``ignore_index``. Data pass through unchanged.

    Args:
        keys: image key, then label keys.
        num_classes: C, classes of the label maps, background 0 included.
        image_channels: expected image channels (3 for RGB, 1 for grey), None to skip the check.
        ignore_index: label value allowed besides 0..C-1 (e.g. 255), None for none.
        spatial_dims: expected spatial dimensions of the image (2 or 3), None to skip the check.
        min_size: the smallest spatial size the network takes, one int or one per spatial dim (the configs'
            ``min_input_size``: the UNet's total downsampling where the input is resized for the network, 1 where a
            sliding window pads it); None to skip the check.

    Raises:
        ValueError: on invalid arguments; when called, on the first failed check.
    """

    def __init__(
        self,
        keys: KeysCollection = ("image", "label"),
        *,
        num_classes: int,
        image_channels: int | None = None,
        ignore_index: int | None = None,
        spatial_dims: int | None = None,
        min_size: int | Sequence[int] | None = None,
    ) -> None:
        super().__init__(keys, allow_missing_keys=True)
        if num_classes < 1:
            raise ValueError(f"expected num_classes >= 1, got {num_classes}")
        if image_channels is not None and image_channels < 1:
            raise ValueError(f"expected image_channels >= 1 or None, got {image_channels}")
        if ignore_index is not None and 0 <= ignore_index < num_classes:
            raise ValueError(f"expected ignore_index outside the classes 0..{num_classes - 1}, got {ignore_index}")
        if spatial_dims not in (None, 1, 2, 3):
            raise ValueError(f"expected spatial_dims 1, 2, 3 or None, got {spatial_dims}")
        sizes = [min_size] if isinstance(min_size, int) else list(min_size or [])
        if min_size is not None and (not sizes or not all(isinstance(m, int) and m >= 1 for m in sizes)):
            raise ValueError(f"expected min_size a positive int, one per spatial dim, or None, got {min_size!r}")
        self.num_classes, self.image_channels = num_classes, image_channels
        self.ignore_index, self.spatial_dims = ignore_index, spatial_dims
        self.min_size = None if min_size is None else tuple(sizes)

    def _check_image(self, d: Mapping[Hashable, Any], key: Hashable) -> torch.Tensor:
        image = torch.as_tensor(d[key])
        shape = tuple(image.shape)
        if self.spatial_dims is not None and image.ndim - 1 != self.spatial_dims:
            raise ValueError(
                f"{_name(d, key)}: expected a CH[WD] image with {self.spatial_dims} spatial dims, got shape {shape}"
                " (a single-frame DICOM loads as W x H x 1: add SqueezeDimd(dim=-1) after EnsureChannelFirstd)"
            )
        if self.image_channels is not None and shape[0] != self.image_channels:
            raise ValueError(
                f"{_name(d, key)}: expected {self.image_channels} image channels, got {shape[0]} (shape {shape}; "
                "an RGBA PNG has 4, a grey one 1; is EnsureChannelFirstd before this check?)"
            )
        if self.min_size is not None:
            spatial = shape[1:]
            smallest = self.min_size * len(spatial) if len(self.min_size) == 1 else self.min_size
            if len(smallest) != len(spatial) or any(s < m for s, m in zip(spatial, smallest, strict=False)):
                raise ValueError(
                    f"{_name(d, key)}: spatial size {spatial} is smaller than the network takes: expected at least "
                    f"{list(smallest)} (min_input_size: the UNet's total downsampling, the product of unet_strides)"
                )
        if image.is_floating_point() and not bool(torch.isfinite(image).all()):
            raise ValueError(f"{_name(d, key)}: image has NaN or infinite values")
        return image

    def _check_label(self, d: Mapping[Hashable, Any], key: Hashable, image_key: Hashable, spatial: tuple) -> None:
        label = torch.as_tensor(d[key])
        shape = tuple(label.shape)
        if label.ndim < 2 or shape[0] != 1:
            raise ValueError(
                f"{_name(d, key)}: expected a 1H[WD] label map with one channel, got shape {shape} "
                "(a colour-coded label image must be converted to class indices first)"
            )
        if shape[1:] != spatial:
            raise ValueError(
                f"{_name(d, key)}: spatial size {shape[1:]} differs from {_name(d, image_key)} spatial size {spatial}"
            )
        _check_label_values(d, key, self.num_classes, self.ignore_index)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Check ``data``; return it as a new dict, arrays unchanged."""
        d = dict(data)
        image_key, *label_keys = self.keys
        if image_key not in d:
            raise ValueError(f"expected image key '{image_key}' in the data, got keys {list(d)}")
        spatial = tuple(self._check_image(d, image_key).shape[1:])
        for key in label_keys:
            if key in d:
                self._check_label(d, key, image_key, spatial)
        return d
