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
"""Labels made by a weak model: the "real" noise of the JCAS paper (pseudo-labels of another network).

An automatic labeller trained on a handful of cases makes the errors such labellers make: it misses small or rare
structures, blurs boundaries and confuses look-alike classes, consistently across the dataset. Here a small MONAI
``UNet`` is trained with cross-entropy on ``k`` clean cases for a fixed number of steps and its predictions replace
the labels (``python -m scripts.make_noisy --mode model``). Everything is deterministic from the seed (one CPU thread
while it runs, so the result does not depend on the machine's thread count).

Images are read in the layout of :func:`scripts.make_noisy.read_label` (PNG: H x W as stored, NIfTI: the stored
array), so a prediction writes back over its label's grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
from monai.inferers import sliding_window_inference
from monai.networks.nets import UNet
from PIL import Image

__all__ = ["WeakModelSettings", "model_labels", "read_image", "train_weak_model"]


@dataclass(frozen=True)
class WeakModelSettings:
    """The labeller's fixed budget.

    Args:
        cases: k, the clean training cases it learns from.
        steps: Adam steps (one random patch of each of the k cases per step).
        learning_rate: Adam's learning rate.
        channels: UNet channels per level (strides 2 between levels).
        patch: training patch and inference window, per spatial axis (clipped to each image, rounded to the UNet's
            divisor).
    """

    cases: int = 3
    steps: int = 200
    learning_rate: float = 1e-2
    channels: tuple[int, ...] = (8, 16, 32)
    patch: int = 64


DEFAULT_WEAK_MODEL = WeakModelSettings()  # model_labels' default (the zoo's flake8-bugbear, B008, refuses a call there)


def read_image(path: str | Path, shape: Sequence[int]) -> np.ndarray:
    """The image at ``path`` as a float32 CH[WD] array whose spatial shape is ``shape`` (its label's array shape).

    PNG/JPG through PIL (grey: one channel; RGB(A): three), NIfTI through nibabel (a trailing channel axis of a
    multi-channel image moves first), DICOM through ITK as :func:`scripts.make_noisy.read_label` reads it.

    Raises:
        ValueError: the image's spatial shape is not ``shape``.
    """
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".png", ".jpg", ".jpeg", ".bmp")):
        with Image.open(path) as img:
            array = np.asarray(img.convert("RGB") if img.mode not in ("L", "I", "I;16", "F") else img, np.float32)
    elif name.endswith((".nii", ".nii.gz")):
        array = np.asarray(nib.load(path).dataobj, dtype=np.float32)
    else:
        from monai.transforms import LoadImage

        array = LoadImage(reader="ITKReader", image_only=True, dtype=np.float32)(str(path)).numpy()
    shape = tuple(shape)
    if array.shape == shape:
        return array[None]
    if array.ndim == len(shape) + 1 and array.shape[:-1] == shape:  # channels last (RGB PNG, 4D NIfTI)
        return np.moveaxis(array, -1, 0)
    squeezed = array.reshape([n for i, n in enumerate(array.shape) if n != 1 or i < len(shape)])
    if squeezed.shape == shape:
        return squeezed[None]
    raise ValueError(f"image {path}: spatial shape {array.shape} does not match its label's {shape}")


def _normalise(image: np.ndarray) -> torch.Tensor:
    """Channel-wise z-score, as the bundle's ``NormalizeIntensityd(channel_wise=True)``."""
    x = torch.as_tensor(image, dtype=torch.float32)
    dims = tuple(range(1, x.ndim))
    return (x - x.mean(dim=dims, keepdim=True)) / x.std(dim=dims, keepdim=True).clamp_min(1e-8)


def _patch_size(shapes: Sequence[Sequence[int]], patch: int, divisor: int) -> tuple[int, ...]:
    """The patch per axis: ``patch``, or the smallest image's size when smaller, rounded up to ``divisor``."""
    smallest = np.min(np.asarray(shapes), axis=0)
    return tuple(int(max(divisor, -(-min(patch, int(n)) // divisor) * divisor)) for n in smallest)


def _pad_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Zero-pad the spatial axes of a CH[WD] tensor at their end up to ``size``."""
    pad = []
    for n, target in zip(reversed(x.shape[1:]), reversed(tuple(size)), strict=True):
        pad += [0, max(0, target - n)]
    return F.pad(x, pad)


def train_weak_model(
    images: Sequence[np.ndarray], labels: Sequence[np.ndarray], num_classes: int, settings: WeakModelSettings, seed: int
) -> torch.nn.Module:
    """A small UNet trained with cross-entropy on ``images`` (CH[WD] arrays) and their ``labels`` (H[WD]).

    Each step takes one random patch of every case (zero-padded where an image is smaller than the patch) and does
    one Adam step. Returns the network in ``eval()`` mode.
    """
    spatial_dims = labels[0].ndim
    divisor = 2 ** (len(settings.channels) - 1)
    size = _patch_size([lab.shape for lab in labels], settings.patch, divisor)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = UNet(spatial_dims, images[0].shape[0], num_classes, settings.channels, (2,) * (len(settings.channels) - 1))
    optimizer = torch.optim.Adam(net.parameters(), lr=settings.learning_rate)
    xs = [_pad_to(_normalise(img), size) for img in images]
    ys = [_pad_to(torch.as_tensor(lab, dtype=torch.int64)[None], size)[0] for lab in labels]
    for _ in range(settings.steps):
        batch_x, batch_y = [], []
        for x, y in zip(xs, ys, strict=True):
            start = [int(rng.integers(0, n - p + 1)) for n, p in zip(y.shape, size, strict=True)]
            window = tuple(slice(s, s + p) for s, p in zip(start, size, strict=True))
            batch_x.append(x[(slice(None), *window)])
            batch_y.append(y[window])
        loss = F.cross_entropy(net(torch.stack(batch_x)), torch.stack(batch_y))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net.eval()


@torch.no_grad()
def _predict(net: torch.nn.Module, image: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """The H[WD] argmax of the network over a CH[WD] image, by sliding window of ``size`` (overlap 0.25)."""
    logits = sliding_window_inference(_normalise(image)[None], size, 4, net, overlap=0.25)
    return logits[0].argmax(dim=0).numpy()


def model_labels(
    images: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    num_classes: int,
    settings: WeakModelSettings = DEFAULT_WEAK_MODEL,
    seed: int = 0,
) -> tuple[list[np.ndarray], list[int]]:
    """Labels of every case predicted by a weak model trained on ``settings.cases`` of them.

    Args:
        images: CH[WD] float arrays, one per case (see :func:`read_image`).
        labels: their clean H[WD] class maps (values 0..C-1).
        num_classes: C.
        settings: the labeller's budget.
        seed: chooses the training cases and seeds the network and its patches.

    Returns:
        The predicted H[WD] class maps (int64, one per case, the training cases' own included) and the indices of the
        cases the model was trained on.

    Raises:
        ValueError: fewer cases than ``settings.cases``, or images and labels of different counts.
    """
    if len(images) != len(labels):
        raise ValueError(f"expected one image per label, got {len(images)} images and {len(labels)} labels")
    if not 1 <= settings.cases <= len(labels):
        raise ValueError(f"the weak model trains on {settings.cases} cases, there are {len(labels)}")
    chosen = sorted(int(i) for i in np.random.default_rng(seed).choice(len(labels), settings.cases, replace=False))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        net = train_weak_model([images[i] for i in chosen], [labels[i] for i in chosen], num_classes, settings, seed)
        divisor = 2 ** (len(settings.channels) - 1)
        size = _patch_size([lab.shape for lab in labels], settings.patch, divisor)
        predictions = [_predict(net, image, size).astype(np.int64) for image in images]
    finally:
        torch.set_num_threads(threads)
    return predictions, chosen
