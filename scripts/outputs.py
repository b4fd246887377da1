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
"""Label maps a person can look at: palette PNGs, coloured labels and overlays of a label on its image.

A palette ("P" mode) PNG stores one byte per pixel, the class index, and a colour table: any image viewer shows
the classes in colour while a program reading the pixel values still gets the class indices. The colours are
PASCAL VOC's (class 0 black, 1 dark red, 2 green, 3 olive, 4 navy, ...), distinct for all 256 indices.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import DtypeLike, KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor, PILWriter
from monai.transforms import MapTransform
from monai.utils import convert_to_numpy
from monai.visualize import blend_images

__all__ = ["Overlayd", "PaletteWriter", "colorize", "display_image", "label_palette", "overlay", "middle_slice"]


def label_palette(size: int = 256) -> np.ndarray:
    """(size, 3) uint8 colours of the class indices 0..size-1, PASCAL VOC's bit-interleaved table (all distinct)."""
    if not 1 <= size <= 256:
        raise ValueError(f"expected a palette size in 1..256, got {size}")
    palette = np.zeros((size, 3), dtype=np.uint8)
    for index in range(size):
        code = index
        for bit in range(8):
            for channel in range(3):
                palette[index, channel] |= ((code >> channel) & 1) << (7 - bit)
            code >>= 3
    return palette


def colorize(label: NdarrayOrTensor) -> np.ndarray:
    """Colours of a class map: label H[WD] integer indices 0..255, returns H[WD]3 uint8 RGB."""
    label = convert_to_numpy(label)
    if label.size and (label.min() < 0 or label.max() > 255):
        raise ValueError(f"expected class indices in 0..255 to colour, got {label.min()}..{label.max()}")
    return label_palette()[label.astype(np.int64)]


def middle_slice(array: NdarrayOrTensor, spatial_dims: int) -> NdarrayOrTensor:
    """A CH[W] array as is, or the middle slice along the last axis of a CHWD volume (``spatial_dims`` 3)."""
    if spatial_dims == 3:
        return array[..., array.shape[-1] // 2]
    if spatial_dims != 2:
        raise ValueError(f"expected spatial_dims 2 or 3, got {spatial_dims}")
    return array


def display_image(image: NdarrayOrTensor) -> np.ndarray:
    """An image for display: image CHW float (any range), returns HW3 float in [0, 1].

    The first three channels are shown as RGB (one channel as grey), stretched together to [0, 1] so that the
    colour balance of an RGB frame is kept.
    """
    image = convert_to_numpy(image, dtype=np.float32)
    if image.ndim != 3:
        raise ValueError(f"expected a CHW image to display, got shape {image.shape}")
    rgb = image[:3] if image.shape[0] >= 3 else np.repeat(image[:1], 3, axis=0)
    low, high = float(rgb.min()), float(rgb.max())
    return np.moveaxis((rgb - low) / max(high - low, 1e-8), 0, -1)


def _palette_colormap() -> str:
    """The name of :func:`label_palette` as a matplotlib colormap (registered once), for ``blend_images``."""
    import matplotlib
    from matplotlib.colors import ListedColormap

    name = "jcas_label_palette"
    if name not in matplotlib.colormaps:
        matplotlib.colormaps.register(ListedColormap(label_palette() / 255.0, name=name))
    return name


def overlay(image: NdarrayOrTensor, label: NdarrayOrTensor, alpha: float = 0.5) -> np.ndarray:
    """The image blended with the coloured label (MONAI's ``blend_images``), background (class 0) left untinted.

    Args:
        image: CHW image, any range (see :func:`display_image`).
        label: HW or 1HW class indices.
        alpha: weight of the label colour, in [0, 1].

    Returns:
        HW3 uint8 RGB.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"expected alpha in [0, 1], got {alpha}")
    label = convert_to_numpy(label)
    label = label[0] if label.ndim == 3 else label
    rgb = np.moveaxis(display_image(image), -1, 0)
    if rgb.shape[1:] != label.shape:
        raise ValueError(f"image {rgb.shape[1:]} and label {label.shape} must have the same spatial size")
    if label.size and (label.min() < 0 or label.max() > 255):
        raise ValueError(f"expected class indices in 0..255 to colour, got {label.min()}..{label.max()}")
    # index c of the 256-colour palette sits at c / 255 of the colormap
    blended = blend_images(rgb, label[None] / 255.0, alpha, cmap=_palette_colormap(), rescale_arrays=False)
    return np.rint(np.moveaxis(np.asarray(blended), 0, -1) * 255.0).astype(np.uint8)


class PaletteWriter(PILWriter):
    """MONAI's ``PILWriter`` writing a one-channel class map as a palette ("P") PNG coloured by :func:`label_palette`.

    Give it to ``SaveImage(d)`` as ``writer`` with ``output_dtype`` uint8 and no ``scale``: the pixel values are the
    class indices, as with the plain writer, and viewers show them in colour.
    """

    @classmethod
    def create_backend_obj(
        cls,
        data_array: NdarrayOrTensor,
        dtype: DtypeLike = None,
        scale: int | None = None,
        reverse_indexing: bool = True,
        **kwargs,
    ):
        image = super().create_backend_obj(data_array, dtype, scale, reverse_indexing, **kwargs)
        if image.mode != "L":
            raise ValueError(f"expected a one-channel uint8 class map for a palette PNG, got PIL mode {image.mode}")
        image.putpalette(label_palette().tobytes())  # "L" becomes "P", the pixel values are kept
        return image


class Overlayd(MapTransform):
    """Adds ``overlay_key``: the image blended with the coloured class map of each key (see :func:`overlay`).

    For ``SaveImaged`` with MONAI's PNG writer. A 3D volume gives its middle slice along the last axis.

    Args:
        keys: class maps, 1H[WD] indices (e.g. ``pred`` after ``AsDiscreted(argmax=True)``).
        image_key: the image, CH[WD], at the class map's spatial size (e.g. inverted with ``Invertd``).
        overlay_key: where to put the 3H[W] uint8 overlay; its metadata is the class map's (file name, ...).
        spatial_dims: 2 or 3.
        alpha: weight of the label colour.
    """

    def __init__(
        self,
        keys: KeysCollection,
        image_key: str = "image",
        overlay_key: str = "overlay",
        spatial_dims: int = 2,
        alpha: float = 0.5,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.image_key = image_key
        self.overlay_key = overlay_key
        self.spatial_dims = spatial_dims
        self.alpha = alpha

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            image = middle_slice(d[self.image_key], self.spatial_dims)
            label = middle_slice(d[key], self.spatial_dims)
            rgb = overlay(image, label, self.alpha)
            meta = d[key].meta if isinstance(d[key], MetaTensor) else {}
            d[self.overlay_key] = MetaTensor(np.moveaxis(rgb, -1, 0), meta=dict(meta))  # 3HW, channel first
        return d
