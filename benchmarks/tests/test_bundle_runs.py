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
"""``benchmarks/bundle_runs.py``: the command a benchmark run is trained or evaluated with."""

from __future__ import annotations

import json

import pytest
from fire.parser import DefaultParseValue
from monai.bundle import ConfigParser, update_kwargs

from benchmarks.bundle_runs import bundle_command, finished_seconds


def _parsed(cmd: list[str], runs_file: bool = False) -> list[dict]:
    """The top-level settings each run of ``cmd`` sees: its config files merged, then its command-line overrides
    with the None values dropped, as ``monai.bundle.run`` does."""
    if runs_file:
        entries = [{k: DefaultParseValue(v) for k, v in e.items()} for e in json.loads(open(cmd[-1]).read())]
    else:
        args = cmd[cmd.index("run") + 1 :]
        entries = [{args[i][2:]: DefaultParseValue(args[i + 1]) for i in range(0, len(args), 2)}]
    out = []
    for entry in entries:
        files = entry.pop("config_file")
        parser = ConfigParser()
        parser.read_config(files if isinstance(files, list) else [files])
        parser.update(update_kwargs({}, **entry))
        out.append(parser.config)
    return out


def test_monai_drops_a_none_override():
    """Why the overlay exists: ``--early_stop_patience None`` on MONAI's command line changes nothing."""
    assert update_kwargs({"early_stop_patience": 10}, early_stop_patience=None) == {"early_stop_patience": 10}


def test_none_values_override_the_config_through_an_overlay(tmp_path):
    overrides = {"early_stop_patience": None, "warmup_gce_q": None, "max_epochs": 7, "loss_type": "ce"}
    cmd = bundle_command(["train.json"], overrides, tmp_path / "train.log")
    assert "--early_stop_patience" not in cmd and "--max_epochs" in cmd
    (config,) = _parsed(cmd)
    assert config["early_stop_patience"] is None and config["warmup_gce_q"] is None  # train.json: 10 and 0.7
    assert config["max_epochs"] == 7 and config["loss_type"] == "ce"
    assert json.loads((tmp_path / "train.nulls.json").read_text()) == {
        "early_stop_patience": None,
        "warmup_gce_q": None,
    }


def test_several_runs_in_one_process_see_their_own_settings(tmp_path):
    runs = [{"early_stop_patience": None, "output_dir": str(tmp_path / name)} for name in ("val", "test")]
    cmd = bundle_command(["train.json", "evaluate.json"], runs, tmp_path / "evaluate.log")
    assert cmd[1:3] == ["-m", "benchmarks.bundle_runs"]
    configs = _parsed(cmd, runs_file=True)
    assert [c["output_dir"] for c in configs] == [str(tmp_path / "val"), str(tmp_path / "test")]
    assert all(c["early_stop_patience"] is None for c in configs)


def test_no_overlay_without_a_none_value(tmp_path):
    cmd = bundle_command(["train.json"], {"max_epochs": 3}, tmp_path / "train.log")
    assert not (tmp_path / "train.nulls.json").exists() and cmd[cmd.index("--config_file") + 1].endswith("train.json")


def test_a_training_and_its_evaluations_in_one_process(tmp_path):
    """One config list per run: the training run sees train.json alone, its evaluation evaluate.json on top."""
    runs = [{"early_stop_patience": None, "max_epochs": 3}, {"early_stop_patience": None, "max_epochs": 3}]
    cmd = bundle_command([["train.json"], ["train.json", "evaluate.json"]], runs, tmp_path / "train.log")
    train, evaluate = _parsed(cmd, runs_file=True)
    assert "model_path" not in train and "model_path" in evaluate  # a key of evaluate.json only
    assert train["early_stop_patience"] is None and evaluate["max_epochs"] == 3
    with pytest.raises(ValueError, match="one config list per run"):
        bundle_command([["train.json"]], runs, tmp_path / "train.log")


def test_finished_seconds_count_each_run_from_the_end_of_the_one_before(tmp_path):
    (tmp_path / "train.times.json").write_text(json.dumps([1030.0, 1042.5]))  # two runs of three finished
    assert finished_seconds(tmp_path / "train.log", start=1000.0) == [30.0, 12.5]
    assert finished_seconds(tmp_path / "other.log", start=1000.0) == []
