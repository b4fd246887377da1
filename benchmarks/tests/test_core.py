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
"""Smoke tests of benchmarks/core.py's sliding-window inference table, at tiny sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmarks import core as benchmark_core
from benchmarks.core import SW_CASES, common_3d_window, jcas_loss, main, window_count
from tests.test_bundle import CONFIGS

TINY = {"channels": (4, 8), "roi": (16, 16, 8), "overlap": 0.5, "sw_batch_size": 2}


@pytest.mark.parametrize(
    "size, roi, overlap, expected",
    [  # per axis: step int(roi (1 - overlap)), ceil((size - roi) / step) + 1 windows, 1 where size <= roi
        ((16, 16, 8), (16, 16, 8), 0.5, 1),
        ((20, 16, 8), (16, 16, 8), 0.5, 2),  # ceil(4 / 8) + 1 = 2, 1, 1
        ((40, 33, 17), (16, 16, 8), 0.5, 64),  # 4 x 4 x 4
        ((256, 256, 128), (96, 96, 96), 0.5, 50),  # step 48: 5 x 5 x 2
        ((256, 256, 128), (96, 96, 96), 0.25, 32),  # step 72: 4 x 4 x 2
        ((64, 64, 48), (96, 96, 96), 0.5, 1),  # padded to the window
    ],
)
def test_window_count(size: tuple[int, ...], roi: tuple[int, ...], overlap: float, expected: int) -> None:
    assert window_count(size, roi, overlap) == expected


def test_window_follows_common_3d() -> None:
    config = json.loads((CONFIGS / "common_3d.json").read_text())
    assert common_3d_window() == (config["patch_size"], config["sw_overlap"], config["sw_batch_size"])


def test_timed_steps_use_the_training_loss_weights() -> None:
    """The timed JCAS steps weigh (and so compute) the loss terms as a default training run does, the Dice term of
    the correction stage included (0.5.0's timings had left it out); a weight passed in overrides train.json's."""
    config = json.loads((CONFIGS / "train.json").read_text())
    prior = torch.tensor([0.7, 0.1, 0.1, 0.1])
    loss = jcas_loss(4, prior, correction=True)
    assert loss.weights == {name: config[f"lambda_{name}"] for name in ("affinity", "volume", "consistency", "dice")}
    torch.manual_seed(0)
    pred = {
        "logits": torch.randn(2, 4, 8, 8),
        "embedding": torch.nn.functional.normalize(torch.randn(2, 8, 4, 4), dim=1),
    }
    target = torch.randint(0, 4, (2, 1, 8, 8))
    loss(pred, target)
    assert loss.weights["dice"] > 0 and float(loss.last_terms["dice"]) > 0
    without = jcas_loss(4, prior, correction=True, lambda_dice=0.0)
    without(pred, target)
    assert "dice" not in without.last_terms and without.weights["affinity"] == config["lambda_affinity"]


def test_networks_give_class_probabilities() -> None:
    x = torch.rand(1, 1, *TINY["roi"])
    for case in SW_CASES:
        net = benchmark_core._sw_network(case, torch.device("cpu"), TINY["channels"], TINY["roi"])
        with torch.inference_mode():
            probs = net(x)
        assert tuple(probs.shape) == (1, 3, *TINY["roi"]) and torch.allclose(probs.sum(1), torch.ones(1))


def test_sw_table_rows() -> None:
    rows = benchmark_core.sw_table(torch.device("cpu"), 1, sizes=[(16, 16, 8), (24, 20, 12)], **TINY)
    assert rows[0] == "| volume | windows | baseline (s) | JCAS (s) | ratio |" and len(rows) == 4
    assert rows[2].startswith("| 16×16×8 | 1 |") and rows[3].startswith("| 24×20×12 | 8 |")
    cells = [[float(cell.strip(" ×")) for cell in row.strip("|").split("|")[2:]] for row in rows[2:]]
    assert all(base >= 0 and jcas >= 0 and ratio > 0 for base, jcas, ratio in cells)


def test_command_line_writes_the_sliding_window_table(tmp_path: Path) -> None:
    out = tmp_path / "core_3d.md"
    argv = ["--skip-dar", "--skip-2d", "--patch3d", "0", "--channels", "4", "8", "--repeats", "1"]
    main([*argv, "--sw-sizes", "20x20x12", "--sw-roi", "16", "16", "8", "--out", str(out)])
    text = out.read_text()
    assert "python -m benchmarks.core --skip-dar" in text
    assert "## Sliding-window inference per volume, 16×16×8 windows, overlap 0.5, 3 classes" in text
    assert "| 20×20×12 | 8 |" in text


def test_bad_volume_size_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--skip-dar", "--skip-2d", "--patch3d", "0", "--sw-sizes", "256x256"])
    assert "expected a volume size XxYxZ" in capsys.readouterr().err
