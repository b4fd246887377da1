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
from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import SaveImaged
from PIL import Image
from scripts.outputs import Overlayd, PaletteWriter, colorize, display_image, label_palette, overlay


def test_palette_is_voc_and_distinct():
    palette = label_palette()
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    assert len({tuple(colour) for colour in palette}) == 256
    assert palette[:5].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128]]
    np.testing.assert_array_equal(label_palette(4), palette[:4])


@pytest.mark.parametrize("size", [0, 257])
def test_palette_size_out_of_range(size):
    with pytest.raises(ValueError, match="palette size"):
        label_palette(size)


def test_colorize():
    label = np.array([[0, 1], [2, 3]])
    np.testing.assert_array_equal(colorize(label), label_palette()[label])
    with pytest.raises(ValueError, match="0..255"):
        colorize(np.array([[0, 256]]))


def save_png(tmp_path, array: torch.Tensor, writer=PaletteWriter) -> Image.Image:
    """``array`` saved by ``SaveImaged`` as ``case_seg.png`` in ``tmp_path``, opened with PIL."""
    saver = SaveImaged(
        "pred",
        output_dir=str(tmp_path),
        output_ext=".png",
        output_postfix="seg",
        output_dtype=np.uint8,
        writer=writer,
        resample=False,
        separate_folder=False,
        print_log=False,
    )
    saver({"pred": MetaTensor(array, meta={"filename_or_obj": "frames/case.png"})})
    return Image.open(tmp_path / "case_seg.png")


def test_palette_png_keeps_class_indices(tmp_path):
    """The palette PNG's pixel values are the class indices (MONAI's W x H layout, swapped back by the writer)
    and its palette gives each class a different colour."""
    label = torch.randint(0, 4, (1, 9, 6), generator=torch.Generator().manual_seed(0)).float()
    image = save_png(tmp_path, label)
    assert image.mode == "P" and image.size == (9, 6)
    np.testing.assert_array_equal(np.asarray(image), label[0].numpy().T.astype(np.uint8))
    colours = np.asarray(image.convert("RGB"))
    np.testing.assert_array_equal(colours, label_palette()[label[0].numpy().T.astype(int)])
    assert len({tuple(c) for c in np.asarray(image.getpalette()[:12]).reshape(4, 3)}) == 4


def test_palette_writer_refuses_rgb(tmp_path):
    with pytest.raises(RuntimeError, match="one-channel uint8 class map"):  # SaveImage re-raises writer errors
        save_png(tmp_path, torch.zeros(3, 4, 4))


def test_display_image_grey_and_rgb():
    grey = display_image(torch.arange(4.0).reshape(1, 2, 2))
    assert grey.shape == (2, 2, 3) and np.allclose(grey[..., 0], grey[..., 2])
    np.testing.assert_allclose(grey[..., 0], [[0, 1 / 3], [2 / 3, 1]], rtol=1e-6)
    rgb = display_image(torch.stack([torch.zeros(2, 2), torch.ones(2, 2), 2 * torch.ones(2, 2), torch.ones(2, 2)]))
    np.testing.assert_allclose(rgb[0, 0], [0, 0.5, 1])  # the colour balance is kept, the fourth channel dropped


def test_overlay_tints_foreground_only():
    image = torch.stack([torch.zeros(2, 2), torch.ones(2, 2), torch.ones(2, 2)])  # cyan after stretching
    label = torch.tensor([[[0, 1], [2, 0]]])
    blended = overlay(image, label, alpha=0.5)
    assert blended.shape == (2, 2, 3) and blended.dtype == np.uint8
    np.testing.assert_array_equal(blended[0, 0], [0, 255, 255])  # background: the image
    np.testing.assert_array_equal(blended[0, 1], [64, 128, 128])  # half cyan, half dark red (128, 0, 0)
    np.testing.assert_array_equal(overlay(image, label, alpha=1.0)[1, 0], [0, 128, 0])
    with pytest.raises(ValueError, match="alpha"):
        overlay(image, label, alpha=1.5)
    with pytest.raises(ValueError, match="same spatial size"):
        overlay(image, torch.zeros(1, 3, 3))


@pytest.mark.parametrize("spatial_dims,shape", [(2, (5, 4)), (3, (5, 4, 3))])
def test_overlayd_adds_a_channel_first_rgb_overlay(spatial_dims, shape):
    pred = MetaTensor(torch.ones(1, *shape), meta={"filename_or_obj": "case.nii.gz"})
    out = Overlayd("pred", spatial_dims=spatial_dims)({"pred": pred, "image": torch.rand(1, *shape)})
    assert out["overlay"].shape == (3, 5, 4) and out["overlay"].dtype == torch.uint8
    assert out["overlay"].meta["filename_or_obj"] == "case.nii.gz"  # saved as case_overlay.png
