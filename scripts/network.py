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
"""JCASNet: any MONAI segmentation network as feature extractor, plus a class head, an embedding head and DAR."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import torch
import torch.nn.functional as F
from monai.networks.layers.factories import Conv, Pool
from monai.utils import ensure_tuple_rep
from torch import nn

from .dar import dar_rectify, normalize_embedding

__all__ = ["JCASNet"]


class JCASNet(nn.Module):
    """The JCAS segmentation network (Guo & Yuan, MICCAI 2022, arXiv 2206.07994).

    The backbone's feature map gives the class logits ``Q`` (a 1×1 conv, at the backbone's resolution). Features
    and logits are average-pooled to the affinity grid, where a 1×1 conv gives the embedding ``F`` and
    :func:`scripts.dar.dar_rectify` the rectified logits; the rectification ``P_grid - Q_grid`` is upsampled and
    added to ``Q``, so ``P = Q + ½ (A⁺ - A⁻) Q`` keeps the backbone's full resolution.

    In ``train()`` mode the forward returns the dict :class:`scripts.losses.CALCLoss` needs; in ``eval()`` mode one
    tensor of class probabilities ``(softmax(P) + softmax(Q)) / 2`` (``softmax(Q)`` when ``use_dar`` is False),
    so MONAI inferers, post transforms and TorchScript export work unchanged.

    Shapes:
        - input: BIH[WD].
        - train output: ``{"logits": BCH[WD], "rectified": BCH[WD] (with DAR), "embedding": BDh[wd]}``, the
          embedding non-negative and unit-norm on the ``affinity_grid`` (h[wd]). Under autocast the embedding and
          the DAR rectification are float32 (DAR's eps and sums are meaningless in float16), hence "rectified" too.
        - eval output: BCH[WD] probabilities in [0, 1] summing to 1 over C.

    Args:
        backbone: any network mapping BIH[WD] to BKH[WD] features, e.g. ``monai.networks.nets.UNet`` with
            ``out_channels=feature_channels``.
        feature_channels: K, channels of the backbone output.
        num_classes: C.
        spatial_dims: 2 or 3.
        embedding_channels: D, channels of the affinity embedding.
        affinity_grid: grid size (int or one per spatial dim) of the embedding and of DAR; N = its product.
        use_dar: False skips DAR (``P`` is not computed), for ablations; the embedding is still returned.
        eps: guards the embedding norm and DAR's row sums.

    Example:
        >>> from monai.networks.nets import UNet
        >>> net = JCASNet(UNet(2, 3, 16, (16, 32), (2,)), 16, num_classes=4, affinity_grid=16).eval()
        >>> net(torch.rand(1, 3, 64, 80)).shape
        torch.Size([1, 4, 64, 80])
    """

    def __init__(
        self,
        backbone: nn.Module,
        feature_channels: int,
        num_classes: int,
        spatial_dims: int = 2,
        embedding_channels: int = 64,
        affinity_grid: Sequence[int] | int = 32,
        use_dar: bool = True,
        eps: float = 1e-9,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if not isinstance(use_dar, bool):
            raise TypeError(f"use_dar must be a bool, got {use_dar!r}")
        self.backbone = backbone
        self.num_classes = num_classes
        self.use_dar = use_dar
        self.eps = eps
        self.affinity_grid = ensure_tuple_rep(affinity_grid, spatial_dims)
        self.upsample_mode = "bilinear" if spatial_dims == 2 else "trilinear"
        conv = Conv[Conv.CONV, spatial_dims]
        self.class_head = conv(feature_channels, num_classes, kernel_size=1)
        self.embedding_head = conv(feature_channels, embedding_channels, kernel_size=1)
        self.pool = Pool[Pool.ADAPTIVEAVG, spatial_dims](self.affinity_grid)

    def forward(self, x: torch.Tensor) -> Union[dict[str, torch.Tensor], torch.Tensor]:  # noqa: UP007 (TorchScript)
        """BIH[WD] images to the train dict or the eval probabilities (see the class docstring)."""
        features = self.backbone(x)
        logits = self.class_head(features)
        # the embedding is normalised, and DAR computed, in float32 even under autocast (eps would be 0 in float16)
        embedding = normalize_embedding(self.embedding_head(self.pool(features)), self.eps)
        rectified = logits
        if self.use_dar:
            grid_logits = self.pool(logits.to(embedding.dtype))
            rectification = dar_rectify(grid_logits, embedding, self.eps) - grid_logits
            size = logits.shape[2:]
            rectified = logits + F.interpolate(rectification, size=size, mode=self.upsample_mode, align_corners=False)
        if self.training:
            out = {"logits": logits, "embedding": embedding}
            if self.use_dar:
                out["rectified"] = rectified
            return out
        probs = torch.softmax(logits, dim=1)
        if self.use_dar:
            probs = 0.5 * (probs + torch.softmax(rectified, dim=1))
        return probs
