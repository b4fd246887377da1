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
"""``--tracking mlflow``: a tiny training run recorded in a local SQLite store, read back with MLflow's client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from monai.bundle import ConfigParser
from scripts.tracking import default_run_name, prepare_mlflow, training_loss

from tests.test_bundle import CONFIGS, run, tiny_demo, workflow

# top-level keys of train.json that are not settings of the experiment: where files go, how the run shows progress
NOT_PARAMS = {"bundle_root", "num_workers", "progress_bar", "resume", "tensorboard_images", "inference_transforms"}


def run_tracked(configs: list[str], workflow_type: str, override: dict) -> None:
    """A workflow with ``tracking="mlflow"`` and MONAI's default store, as ``--tracking mlflow`` runs it."""
    with pytest.MonkeyPatch.context() as env:
        env.delenv("MLFLOW_TRACKING_URI", raising=False)  # the store must be the bundle's default
        env.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        run(workflow(configs, workflow_type, tracking="mlflow", **override))


@pytest.fixture(scope="module")
def tracked(tmp_path_factory) -> dict:
    """Two epochs (one warm-up, one correction), then an evaluation, both tracked in the default store."""
    mlflow = pytest.importorskip("mlflow")
    root = tmp_path_factory.mktemp("tracking")
    override = tiny_demo(root)  # output_dir a plain path, as on the command line
    run_tracked(["train.json"], "train", override)
    store = root / "eval" / "mlruns.db"  # the default: <output_dir>/mlruns.db, artifacts in <output_dir>/mlruns
    assert store.is_file()
    client = mlflow.tracking.MlflowClient(f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("monai_experiment")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1  # trainer and validator log into one run
    run_tracked(["train.json", "evaluate.json"], "eval", override)
    evaluations = [r for r in client.search_runs([experiment.experiment_id]) if r.info.run_id != runs[0].info.run_id]
    assert len(evaluations) == 1
    return {"root": root, "client": client, "run": runs[0], "evaluation": evaluations[0]}


@pytest.mark.slow
def test_run_records_the_hyperparameters(tracked):
    run = tracked["run"]
    assert run.info.status == "FINISHED"
    assert run.info.run_name.startswith("jcas_")
    params = run.data.params
    expected = {
        "loss_type": "jcas",
        "max_epochs": "2",
        "warmup_epochs": "1",
        "learning_rate": "0.025",
        "transition_lr": "0.01",
        "lambda_affinity": "0.1",
        "lambda_volume": "0.0001",
        "lambda_consistency": "0.01",
        "transition_estimate": "anchor",
        "image_size": "[80, 64]",
        "affinity_grid": "8",
        "unet_channels": "[8, 16, 32]",
    }
    assert {key: params.get(key) for key in expected} == expected
    assert params["datalist"] == str(tracked["root"] / "data" / "datalist.json")


@pytest.mark.slow
def test_run_records_metrics_per_epoch(tracked):
    client, run_id = tracked["client"], tracked["run"].info.run_id
    for name in ("val_mean_dice", "val_mean_iou", "loss_class", "loss_total", "T_C/0-0", "T_C/2-1", "T_A/1-1"):
        history = client.get_metric_history(run_id, name)
        assert sorted(m.step for m in history) == [1, 2], name
    assert len(client.get_metric_history(run_id, "train_loss")) == 2 * 4  # every iteration: 8 images, batch 2


@pytest.mark.slow
def test_run_records_the_learned_transitions(tracked, tmp_path):
    client, run = tracked["client"], tracked["run"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"transitions.json", "T_C.png", "learning_curve.png", "learning_curve.json"} <= artifacts
    assert any(p.startswith("config_") and p.endswith(".json") for p in artifacts)  # the executed config
    record = json.loads(Path(client.download_artifacts(run.info.run_id, "transitions.json", str(tmp_path))).read_text())
    assert record["epoch"] == 2
    t_class = record["T_C"]
    assert len(t_class) == 4 and all(len(row) == 4 for row in t_class)
    for i, row in enumerate(t_class):  # the metrics of the last epoch are the matrix of the artifact
        for j, value in enumerate(row):
            assert run.data.metrics[f"T_C/{i}-{j}"] == pytest.approx(value)


@pytest.mark.slow
def test_evaluation_is_a_finished_run_with_the_metric_files(tracked):
    client, run = tracked["client"], tracked["evaluation"]
    assert run.info.status == "FINISHED"  # MONAI's validator handler alone would leave it running
    assert run.info.run_name.startswith("evaluate_")
    assert run.data.params["model_path"] == str(tracked["root"] / "models" / "model.pt")
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_mean_dice")] == [1]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.csv", "val_mean_dice_raw.csv", "val_mean_iou_summary.csv"} <= artifacts


def _is_setting(value) -> bool:
    """A plain top-level value (not a component, an expression, a reference or a list of expressions)."""
    if isinstance(value, dict):
        return False
    items = value if isinstance(value, list) else [value]
    return not any(isinstance(v, str) and v[:1] in ("$", "@", "%") for v in items)


def test_experiment_params_cover_the_top_level_settings():
    config = ConfigParser.load_config_file(CONFIGS / "train.json")
    settings = {key for key, value in config.items() if _is_setting(value)}
    missing = settings - NOT_PARAMS - set(config["experiment_params"])
    assert not missing, f"add {sorted(missing)} to experiment_params in configs/train.json (or to NOT_PARAMS here)"
    assert all(value == f"@{key}" for key, value in config["experiment_params"].items())


def test_prepare_mlflow_leaves_untracked_runs_alone():
    handlers = [object(), object()]
    assert prepare_mlflow(handlers, {"learning_rate": 0.1}, class_names=["not (checked)"]) == []


@pytest.fixture
def mlflow_handler(tmp_path):
    pytest.importorskip("mlflow")
    from monai.handlers import MLFlowHandler

    executed = f"{tmp_path} + '/config_20260101_120000.json'"  # MONAI's name when output_dir is a plain path
    (tmp_path / "config_20260101_120000.json").write_text("{}")
    return MLFlowHandler(
        tracking_uri=f"sqlite:///{tmp_path / 'mlruns.db'}", artifacts=executed, experiment_param={"seed": 7}
    )


def test_prepare_mlflow_completes_the_handler(mlflow_handler, tmp_path):
    params = {"learning_rate": 0.1, "seed": 0}
    for _ in range(2):  # a second call changes nothing more
        assert prepare_mlflow([object(), mlflow_handler], params, ["a.json"], str(tmp_path), True) == [mlflow_handler]
    assert mlflow_handler.experiment_param == {"learning_rate": 0.1, "seed": 7}  # the handler's own value wins
    assert mlflow_handler.artifacts == (str(tmp_path / "config_20260101_120000.json"), "a.json")
    assert mlflow_handler.output_transform({"loss": 0.5}) == 0.5
    assert mlflow_handler.close_on_complete
    assert not mlflow_handler.state_attributes  # no CALCStatsHandler: no transitions to log


def test_prepare_mlflow_refuses_class_names_mlflow_refuses(mlflow_handler):
    with pytest.raises(ValueError, match=r"class_names: MLflow refuses \['tumour \(core\)'\]"):
        prepare_mlflow([mlflow_handler], {}, class_names=["background", "tumour (core)", "left/right: 2.5-mm"])


def test_training_loss_reads_dict_and_decollated_outputs():
    assert training_loss({"loss": 0.5, "pred": None}) == 0.5
    assert training_loss([{"loss": 0.25}, {"loss": 0.25}]) == 0.25
    with pytest.raises(ValueError, match="'loss'"):
        training_loss((0.5,))


def test_default_run_name_names_the_loss():
    assert default_run_name("gce").startswith("gce_")


def test_tracking_hook_does_not_reorder_training():
    """The trainer's MLflow hook (``_requires_``) comes after its arguments: MONAI resolves a component's references
    in the order of its keys, and creating the train DataLoader before the network (as without the hook) keeps the
    random stream, so a run repeats the published benchmark runs bit for bit (measured: a 2-epoch run with the hook
    first differed by up to 0.02 in the weights)."""
    trainer = json.loads((CONFIGS / "train.json").read_text())["train"]["trainer"]
    keys = list(trainer)
    assert keys[-1] == "_requires_" and keys.index("train_data_loader") < keys.index("network")
