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

from scripts.dar import DAR, dar_rectify, dar_rectify_naive, normalize_embedding

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
