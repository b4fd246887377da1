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
from monai.networks.nets import UNet
from scripts.dar import DAR, dar_rectify, dar_rectify_naive, normalize_embedding
from scripts.network import JCASNet

SHAPES = [  # (logits shape, embedding channels)
    ((2, 4, 8, 8), 6),
    ((1, 3, 5, 7), 16),
    ((2, 4, 4, 5, 6), 8),
    ((1, 2, 3, 3, 3), 3),
]


@pytest.mark.parametrize("shape,channels", SHAPES)
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_linear_equals_naive_values_and_gradients(shape, channels, dtype, tol):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(*shape, generator=gen, dtype=dtype, requires_grad=True)
    embedding = torch.randn(shape[0], channels, *shape[2:], generator=gen, dtype=dtype, requires_grad=True)
    weight = torch.randn(*shape, generator=gen, dtype=dtype)  # a random linear functional to backpropagate
    fast = dar_rectify(logits, embedding)
    naive = dar_rectify_naive(logits, embedding)
    assert fast.shape == logits.shape and fast.dtype == dtype
    torch.testing.assert_close(fast, naive, rtol=tol, atol=tol)
    grads_fast = torch.autograd.grad((fast * weight).sum(), (logits, embedding))
    grads_naive = torch.autograd.grad((naive * weight).sum(), (logits, embedding))
    for g_fast, g_naive in zip(grads_fast, grads_naive, strict=True):
        torch.testing.assert_close(g_fast, g_naive, rtol=tol, atol=tol)


def test_gradcheck():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(1, 3, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    embedding = torch.randn(1, 5, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(dar_rectify, (logits, embedding))


def test_known_value_two_pixels():
    # two pixels, orthogonal embeddings: A = I, so A⁺Q = Q and A⁻Q swaps the pixels: P = Q + (Q - swap(Q)) / 2
    logits = torch.tensor([[[[1.0, 3.0]], [[0.0, -2.0]]]])  # B=1, C=2, 1x2 grid
    embedding = torch.tensor([[[[1.0, 0.0]], [[0.0, 2.0]]]])
    expected = torch.tensor([[[[0.0, 4.0]], [[1.0, -3.0]]]])
    torch.testing.assert_close(dar_rectify(logits, embedding), expected)


def test_zero_embedding_only_eliminates():
    # relu kills a negative embedding: A = 0, so A⁺Q = 0 and A⁻Q is the mean of Q over the grid
    logits = torch.randn(1, 3, 4, 4)
    out = dar_rectify(logits, -torch.ones(1, 2, 4, 4))
    torch.testing.assert_close(out, logits - 0.5 * logits.mean(dim=(2, 3), keepdim=True))


def test_normalize_embedding_unit_norm_nonnegative():
    raw = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    f = normalize_embedding(raw)
    assert f.min() >= 0
    norms = torch.linalg.vector_norm(f, dim=1)
    alive = (raw > 0).any(dim=1)  # pixels with a positive channel have unit norm, the others are zero
    assert (~alive).any() and alive.any()
    torch.testing.assert_close(norms[alive], torch.ones_like(norms[alive]))
    assert torch.all(norms[~alive] == 0)


def test_module_equals_function():
    logits, embedding = torch.randn(2, 4, 6, 6), torch.randn(2, 5, 6, 6)
    torch.testing.assert_close(DAR()(logits, embedding), dar_rectify(logits, embedding))


@pytest.mark.parametrize(
    "logits,embedding",
    [
        (torch.zeros(2, 4, 8), torch.zeros(2, 3, 8)),  # 1 spatial dim
        (torch.zeros(2, 4, 8, 8), torch.zeros(2, 3, 8, 4)),  # grid mismatch
        (torch.zeros(2, 4, 8, 8), torch.zeros(1, 3, 8, 8)),  # batch mismatch
        (torch.zeros(2, 4, 8, 8), torch.zeros(2, 3, 8, 8, 1)),  # rank mismatch
    ],
)
def test_bad_shapes(logits, embedding):
    with pytest.raises(ValueError, match="logits"):
        dar_rectify(logits, embedding)


def make_embedding(kind: str, shape: tuple[int, ...], channels: int, gen: torch.Generator) -> torch.Tensor:
    """BDH[WD] raw embeddings whose cosine affinity is degenerate in a known way.

    "identical": one positive vector at every pixel (an all-background frame, a 3D patch), so A = 1 and 1 - A = 0.
    "separated": scaled one-hot vectors, so A is exactly 0 or 1. "near<s>": a common vector plus noise of standard
    deviation s, so cosines exceed 0.999 and 1 - A is tiny. "random": Gaussian, as the network starts.
    """
    batch, grid = shape[0], shape[2:]
    common = torch.rand(batch, channels, *[1] * len(grid), generator=gen) + 0.1
    if kind == "identical":
        return common.expand(batch, channels, *grid).contiguous()
    if kind == "separated":
        index = torch.randint(0, channels, (batch, *grid), generator=gen)
        return 3.0 * torch.nn.functional.one_hot(index, channels).movedim(-1, 1).float()
    if kind.startswith("near"):
        return common + float(kind[4:]) * torch.randn(batch, channels, *grid, generator=gen)
    return torch.randn(batch, channels, *grid, generator=gen)


def max_cosine_gap(embedding: torch.Tensor) -> float:
    """max over pixel pairs of 1 - cos(f_i, f_j), in float64."""
    f = torch.nn.functional.normalize(torch.relu(embedding.double()).flatten(2), dim=1)
    return float((1 - f.transpose(1, 2) @ f).max())


def assert_within_convex_bound(out: torch.Tensor, logits: torch.Tensor, tol: float) -> None:
    """A⁺Q and A⁻Q are (sub-)convex combinations of the rows of Q, so |P - Q| ≤ max |Q| per image and channel."""
    q = logits.double().flatten(2)
    bound = q.abs().amax(dim=2, keepdim=True)
    assert torch.isfinite(out).all()
    excess = ((out.double().flatten(2) - q).abs() - bound).max().item()
    assert excess <= tol, f"|P - Q| exceeds max |Q| by {excess}"


DEGENERATE = [  # (logits shape, embedding kind): float32 linear DAR against the float64 N×N definition
    ((2, 4, 16, 16), "identical"),  # before the fix: off by 7.6e3 (outputs near 20); 3D: by 0.23
    ((1, 4, 8, 8, 8), "identical"),
    ((2, 4, 16, 16), "separated"),
    ((1, 4, 8, 8, 8), "separated"),
    ((2, 4, 16, 16), "random"),
]


@pytest.mark.parametrize("shape,kind", DEGENERATE)
def test_degenerate_embeddings_match_float64_definition(shape, kind):
    gen = torch.Generator().manual_seed(2)
    logits = 5 * torch.randn(*shape, generator=gen)
    embedding = make_embedding(kind, shape, 8, gen)
    expected = dar_rectify_naive(logits.double(), embedding.double())
    out = dar_rectify(logits, embedding)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), expected, rtol=0, atol=1e-5)  # measured ≤ 1e-6


@pytest.mark.parametrize("shape", [(2, 4, 6, 6), (1, 3, 4, 4, 3)])
@pytest.mark.parametrize("kind", ["identical", "separated", "near1e-4"])
def test_degenerate_gradients_match_definition_in_float64(shape, kind):
    gen = torch.Generator().manual_seed(0)
    logits = (5 * torch.randn(*shape, generator=gen)).double().requires_grad_()
    embedding = make_embedding(kind, shape, 5, gen).double().requires_grad_()
    weight = torch.randn(*shape, generator=gen, dtype=torch.float64)
    grads = torch.autograd.grad((dar_rectify(logits, embedding) * weight).sum(), (logits, embedding))
    expected = torch.autograd.grad((dar_rectify_naive(logits, embedding) * weight).sum(), (logits, embedding))
    for grad, grad_naive in zip(grads, expected, strict=True):  # measured ≤ 5e-7 of the largest gradient
        assert (grad - grad_naive).abs().max() <= 1e-5 * grad_naive.abs().max()


@pytest.mark.parametrize("shape", [(2, 4, 16, 16), (1, 4, 8, 8, 8)])
@pytest.mark.parametrize("kind", ["near1e-3", "near1e-4", "near1e-5", "near1e-6"])
def test_nearly_identical_embeddings_are_bounded(shape, kind):
    # 1 - A is 1e-5 .. 1e-12 here: the old linear form cancelled to rounding noise (|P - Q| up to 2e4 for
    # |Q| ≤ 20); now it is within the convex bound and, measured, within 1e-4 of the float64 definition
    gen = torch.Generator().manual_seed(3)
    logits = 5 * torch.randn(*shape, generator=gen)
    embedding = make_embedding(kind, shape, 8, gen)
    assert max_cosine_gap(embedding) < 1e-3
    out = dar_rectify(logits, embedding)
    assert_within_convex_bound(out, logits, tol=1e-5)
    torch.testing.assert_close(out.double(), dar_rectify_naive(logits.double(), embedding.double()), rtol=0, atol=1e-3)


@pytest.mark.parametrize("shape", [(2, 4, 16, 16), (1, 4, 8, 8, 8)])
@pytest.mark.parametrize("kind", ["identical", "near1e-4", "random"])
@pytest.mark.parametrize("amp_dtype", [torch.bfloat16, torch.float16])
def test_autocast_computes_in_float32(shape, kind, amp_dtype):
    gen = torch.Generator().manual_seed(4)
    logits = (5 * torch.randn(*shape, generator=gen)).requires_grad_()
    embedding = make_embedding(kind, shape, 8, gen).requires_grad_()
    reference = dar_rectify(logits, embedding)
    with torch.autocast("cpu", dtype=amp_dtype):
        out = dar_rectify(logits, embedding)  # float32 inputs: autocast must not change a bit
        low = dar_rectify(logits.to(amp_dtype), embedding.to(amp_dtype))  # low-precision inputs, as from a conv
    assert out.dtype == torch.float32 and low.dtype == amp_dtype
    torch.testing.assert_close(out, reference, rtol=0, atol=0)
    # computed in float32 from the rounded inputs, then rounded once: within half an ulp of amp_dtype
    rounded = dar_rectify_naive(logits.to(amp_dtype).double(), embedding.to(amp_dtype).double())
    ulp = torch.finfo(amp_dtype).eps
    torch.testing.assert_close(low.double(), rounded, rtol=ulp, atol=ulp)
    assert_within_convex_bound(low, logits.to(amp_dtype), tol=ulp * float(logits.detach().abs().max()))
    grads = torch.autograd.grad(out.sum() + low.float().sum(), (logits, embedding))
    assert all(torch.isfinite(g).all() for g in grads)


def test_all_dead_and_partly_dead_embeddings_have_finite_gradients():
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    embedding = torch.randn(1, 2, 4, 4)
    embedding[:, :, :2] = -1.0  # relu kills the top half: f = 0 there
    embedding.requires_grad_()
    for emb in (embedding, -embedding.abs()):
        out = dar_rectify(logits, emb)
        torch.testing.assert_close(out.double(), dar_rectify_naive(logits.double(), emb.double()), rtol=0, atol=1e-5)
        grads = torch.autograd.grad(out.sum(), (logits, embedding))
        assert all(torch.isfinite(g).all() for g in grads)


NET_CASES = [  # spatial_dims, input size, grid; the whole JCASNet forward, as trained under autocast
    (2, (32, 40), (8, 8)),
    (3, (16, 16, 12), 4),
]


def make_net(spatial_dims: int, grid, identical: bool) -> JCASNet:
    torch.manual_seed(0)
    backbone = UNet(spatial_dims, 3, 8, channels=(8, 16), strides=(2,), num_res_units=1)
    net = JCASNet(backbone, 8, 4, spatial_dims, embedding_channels=6, affinity_grid=grid).train()
    if identical:  # an all-background frame: the same embedding at every grid cell
        with torch.no_grad():
            net.embedding_head.weight.zero_()
            net.embedding_head.bias.fill_(0.1)
    return net


@pytest.mark.parametrize("spatial_dims,size,grid", NET_CASES)
@pytest.mark.parametrize("identical", [False, True])
@pytest.mark.parametrize("amp_dtype", [torch.bfloat16, torch.float16])
def test_jcasnet_train_forward_under_autocast(spatial_dims, size, grid, identical, amp_dtype):
    net = make_net(spatial_dims, grid, identical)
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(5))
    with torch.autocast("cpu", dtype=amp_dtype):
        out = net(x)
    assert out["embedding"].dtype == torch.float32 and out["rectified"].dtype == torch.float32
    for value in out.values():
        assert torch.isfinite(value).all()
    # the rectification is DAR's (bounded by max |Q| on the grid) upsampled by interpolation, a convex combination
    logits = out["logits"]
    assert_within_convex_bound(out["rectified"], logits, tol=1e-5 * float(logits.detach().abs().max()))
    (logits.float().sum() + out["rectified"].sum() + out["embedding"].sum()).backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert len(grads) == len(list(net.parameters()))
    assert all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("spatial_dims,size,grid", NET_CASES)
def test_jcasnet_identical_embeddings_match_float64(spatial_dims, size, grid):
    # before the fix the float32 rectified logits of this all-background frame were off by 0.13 (2D), 0.35 (3D)
    net = make_net(spatial_dims, grid, identical=True)
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(6))
    out = net(x)
    expected = net.double()(x.double())
    torch.testing.assert_close(out["rectified"].double(), expected["rectified"], rtol=1e-5, atol=1e-5)
