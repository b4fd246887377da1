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
"""model.ts follows model.pt (``scripts/torchscript.py``): re-exported when older, never created, written whole."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from monai.networks.nets import UNet
from scripts.network import JCASNet
from scripts.torchscript import refresh_torchscript

ROOT = Path(__file__).resolve().parents[1]


def tiny_net(seed: int) -> JCASNet:
    torch.manual_seed(seed)
    return JCASNet(UNet(2, 3, 8, (8, 16), (2,)), 8, num_classes=4, embedding_channels=6, affinity_grid=4)


def test_an_older_model_ts_is_re_exported_from_model_pt(tmp_path):
    trained, other = tiny_net(0), tiny_net(1)
    assert refresh_torchscript(trained, tmp_path) is False  # neither file
    torch.save(trained.state_dict(), tmp_path / "model.pt")
    assert refresh_torchscript(trained, tmp_path) is False and sorted(os.listdir(tmp_path)) == ["model.pt"]  # no .ts
    torch.jit.script(other.eval()).save(str(tmp_path / "model.ts"))  # the export of other weights
    os.utime(tmp_path / "model.ts", (1e9, 1e9))
    trained.train()
    config, meta = ROOT / "configs" / "inference.json", ROOT / "configs" / "metadata.json"
    assert refresh_torchscript(trained, tmp_path, config, meta) is True
    assert trained.training  # the given network is left as it was
    assert sorted(os.listdir(tmp_path)) == ["model.pt", "model.ts"]  # no temporary file left
    extra = {"metadata.json": "", "inference.json": ""}
    exported = torch.jit.load(str(tmp_path / "model.ts"), _extra_files=extra)
    x = torch.rand(1, 3, 16, 20)
    torch.testing.assert_close(exported(x), trained.eval()(x))
    assert not torch.allclose(exported(x), other.eval()(x))
    assert json.loads(extra["inference.json"]) == json.loads(config.read_text())
    assert json.loads(extra["metadata.json"])["version"] == json.loads(meta.read_text())["version"]
    assert refresh_torchscript(trained, tmp_path) is False  # up to date: not written again
