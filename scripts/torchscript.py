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
"""Keeps ``model.ts`` the TorchScript export of ``model.pt``: training that replaces ``model.pt`` re-exports it.

The bundle ships both in ``models/``; the quick start retrains into ``models/``, which used to leave ``model.ts``
the export of the shipped weights. :func:`refresh_torchscript`, in train.json's ``finalize``, exports the new best
weights as ``python -m monai.bundle ckpt_export network_def --filepath models/model.ts --ckpt_file models/model.pt
--meta_file configs/metadata.json --config_file configs/inference.json`` does (the same TorchScript program and
extra files ``metadata.json`` and ``inference.json``), written atomically. A ``ckpt_dir`` without ``model.ts`` gets
none: export one with that command.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile

import torch
from monai.bundle import ConfigParser
from monai.data import save_net_with_metadata
from monai.networks.utils import convert_to_torchscript

__all__ = ["refresh_torchscript"]

logger = logging.getLogger(__name__)


def refresh_torchscript(
    network: torch.nn.Module,
    ckpt_dir: str | os.PathLike,
    config_file: str | os.PathLike | None = None,
    meta_file: str | os.PathLike | None = None,
    model_name: str = "model",
) -> bool:
    """Re-export ``ckpt_dir/model.ts`` from ``ckpt_dir/model.pt`` when the ``.ts`` exists and is older.

    A copy of ``network`` (unwrapped from DDP, on the CPU, in ``eval()`` mode) loads ``model.pt`` with
    ``torch.load(weights_only=True)``, is scripted with MONAI's ``convert_to_torchscript`` and saved with
    ``save_net_with_metadata`` to a temporary file in ``ckpt_dir``, then renamed over ``model.ts``; ``network``
    itself is not changed.

    Example (train.json's ``finalize``)::

        "$@scripts.torchscript.refresh_torchscript(@network, @ckpt_dir, @bundle_root + '/configs/inference.json',
        @bundle_root + '/configs/metadata.json')"

    Args:
        network: a network of the architecture ``model.pt`` was saved from (the trained one).
        ckpt_dir: the folder of ``model.pt`` and ``model.ts``.
        config_file: a config stored in the export as ``<name>.json`` (``inference.json``), as ``ckpt_export``
            does; None: none.
        meta_file: the bundle's ``metadata.json``, stored as ``metadata.json``; None: none.
        model_name: the files' name without extension.

    Returns:
        whether ``model.ts`` was written.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_rank() > 0:
        return False  # under torchrun process 0 writes the files
    ts_path = os.path.join(ckpt_dir, f"{model_name}.ts")
    pt_path = os.path.join(ckpt_dir, f"{model_name}.pt")
    if not os.path.isfile(ts_path) or not os.path.isfile(pt_path):
        return False
    if os.path.getmtime(ts_path) >= os.path.getmtime(pt_path):
        return False
    net = copy.deepcopy(getattr(network, "module", network)).cpu().eval()
    net.load_state_dict(torch.load(pt_path, map_location="cpu", weights_only=True))
    extra = {}
    if config_file is not None:
        name = os.path.splitext(os.path.basename(config_file))[0]
        extra[f"{name}.json"] = json.dumps(ConfigParser.load_config_file(str(config_file))).encode()
    meta = None if meta_file is None else ConfigParser.load_config_file(str(meta_file))
    fd, tmp_path = tempfile.mkstemp(prefix="tmp", suffix=".ts", dir=ckpt_dir)
    os.close(fd)
    try:
        scripted = convert_to_torchscript(net)
        save_net_with_metadata(
            scripted,
            tmp_path,
            include_config_vals=False,
            append_timestamp=False,
            meta_values=meta,
            more_extra_files=extra,
        )
        os.replace(tmp_path, ts_path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
    logger.info(f"re-exported '{ts_path}' (TorchScript) from the new '{pt_path}'")
    return True
