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

import pytest
import torch
from monai.inferers import SimpleInferer, SlidingWindowInferer
from monai.networks.nets import UNet
from scripts.dar import dar_rectify
from scripts.losses import CALCLoss
from scripts.network import JCASNet

CASES = [  # spatial_dims, input size, grid
    (2, (32, 40), (8, 8)),
    (2, (24, 40), (3, 5)),  # non-square grid that does not divide the input
    (3, (16, 16, 12), 4),
]


def make_net(spatial_dims: int, grid, use_dar: bool = True, in_channels: int = 3, classes: int = 4) -> JCASNet:
    torch.manual_seed(0)
    backbone = UNet(spatial_dims, in_channels, 8, channels=(8, 16), strides=(2,), num_res_units=1)
    return JCASNet(backbone, 8, classes, spatial_dims, embedding_channels=6, affinity_grid=grid, use_dar=use_dar)


@pytest.mark.parametrize("spatial_dims,size,grid", CASES)
def test_train_output(spatial_dims, size, grid):
    net = make_net(spatial_dims, grid).train()
    out = net(torch.rand(2, 3, *size))
    grid = net.affinity_grid
    assert out["logits"].shape == (2, 4, *size)
    assert out["rectified"].shape == (2, 4, *size)
    assert out["embedding"].shape == (2, 6, *grid)
    norms = out["embedding"].norm(dim=1)
    assert out["embedding"].min() >= 0 and torch.all((norms < 1e-6) | ((norms - 1).abs() < 1e-5))


@pytest.mark.parametrize("spatial_dims,size,grid", CASES)
def test_eval_output_is_fused_probability(spatial_dims, size, grid):
    net = make_net(spatial_dims, grid)
    x = torch.rand(2, 3, *size)
    train_out = net.train()(x)
    probs = net.eval()(x)
    assert probs.shape == (2, 4, *size) and probs.dtype == torch.float32
    assert probs.min() >= 0 and probs.max() <= 1
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(2, *size))
    # UNet's instance norm has no running stats, so train and eval forward agree
    expected = 0.5 * (train_out["logits"].softmax(1) + train_out["rectified"].softmax(1))
    torch.testing.assert_close(probs, expected)


def test_rectified_is_logits_plus_upsampled_dar_correction():
    net = make_net(2, (8, 8)).train()
    x = torch.rand(1, 3, 32, 40)
    out = net(x)
    grid_logits = net.pool(out["logits"])
    correction = dar_rectify(grid_logits, out["embedding"]) - grid_logits
    upsampled = torch.nn.functional.interpolate(correction, size=(32, 40), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out["rectified"], out["logits"] + upsampled)
    assert (out["rectified"] - out["logits"]).abs().max() > 1e-4


def test_without_dar():
    net = make_net(2, 8, use_dar=False)
    x = torch.rand(1, 3, 32, 32)
    out = net.train()(x)
    assert "rectified" not in out
    torch.testing.assert_close(net.eval()(x), out["logits"].softmax(1))


@pytest.mark.parametrize("spatial_dims,size,grid", CASES)
def test_gradients_reach_backbone_heads_and_transitions(spatial_dims, size, grid):
    net = make_net(spatial_dims, grid).train()
    loss = CALCLoss(4, class_prior=torch.tensor([0.4, 0.3, 0.2, 0.1]), correction=True)
    x, y = torch.rand(2, 3, *size), torch.randint(0, 4, (2, 1, *size))
    loss(net(x), y).backward()
    modules = {
        "backbone": net.backbone,
        "class_head": net.class_head,
        "embedding_head": net.embedding_head,
        "t_class": loss.t_class,
        "t_affinity": loss.t_affinity,
    }
    for name, module in modules.items():
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None for g in grads), name
        assert sum(g.abs().sum() for g in grads) > 0, name


def test_inferers_and_torchscript():
    net = make_net(2, 8).eval()
    x = torch.rand(1, 3, 48, 64)
    with torch.no_grad():
        direct = net(x)
        torch.testing.assert_close(SimpleInferer()(x, net), direct)
        sliding = SlidingWindowInferer(roi_size=(32, 32), sw_batch_size=2, overlap=0.25)(x, net)
        assert sliding.shape == direct.shape
        torch.testing.assert_close(sliding.sum(dim=1), torch.ones(1, 48, 64))
        scripted = torch.jit.script(net)
        torch.testing.assert_close(scripted(x), direct)


def test_bad_arguments():
    with pytest.raises(ValueError, match="spatial_dims"):
        JCASNet(torch.nn.Identity(), 3, 4, spatial_dims=1)
    with pytest.raises(TypeError, match="use_dar"):
        JCASNet(torch.nn.Identity(), 3, 4, use_dar="false")  # a command-line string must not pass as True
