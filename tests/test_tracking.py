"""Tracking backends (``--tracking``): a tiny run logged to MLflow and read back with MLflow's
own client, TensorBoard under Hugging Face's metric names, a resumed run continuing its MLflow
run, and a missing package failing before any work."""

from __future__ import annotations

import json

import pytest

import domainfit
from domainfit.cli import main
from conftest import write_intents_csv
from helpers import fast_settings

# 16 training rows in batches of 8 for 6 epochs: 12 steps, logged at steps 10 and 12, with 6 validations.
TINY = {**fast_settings(), "training.epochs": 6, "training.save_steps": 2}


def _cli_train(data, out, model, *extra: str) -> int:
    sets = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]
    return main(["train", "--data", str(data), "--eval-data", str(data), "--output", str(out), "--model", str(model),
                 *sets, *extra])


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """The folder the MLflow tests' runs go in, and its default store beside them (shared:
    creating a store's tables takes seconds); no MLflow settings from the environment."""
    folder = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
            patch.delenv(name, raising=False)
        yield folder, f"sqlite:///{folder / 'mlflow.db'}"


def _runs(client, name: str):
    experiment = client.get_experiment_by_name("domainfit")
    return experiment, client.search_runs([experiment.experiment_id], f"attributes.run_name = '{name}'")


def test_mlflow_run_reads_back_with_mlflows_client(tmp_path, tiny_model, store):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    folder, uri = store
    data = write_intents_csv(tmp_path / "d.csv", per_class=6)
    out = folder / "m"
    assert _cli_train(data, out, tiny_model, "--tracking", "mlflow") == 0

    client = MlflowClient(tracking_uri=uri)
    experiment, (run,) = _runs(client, "m")
    manifest = json.loads((out / "domainfit.json").read_text())
    assert manifest["tracking"] == {"backend": "mlflow", "tracking_uri": uri, "run_id": run.info.run_id,
                                    "experiment_id": experiment.experiment_id}
    assert run.info.status == "FINISHED" and run.info.run_name == "m"
    # parameters: the resolved configuration, flat
    params = run.data.params
    assert params["training.epochs"] == "6" and params["training.batch_size"] == "8"
    assert params["method.name"] == "full" and params["training.tracking"] == "mlflow"
    assert params["data.train"] == str(data) and run.data.tags["domainfit.task"] == "classification"
    # per-step metrics under Hugging Face's names
    loss = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in loss] == [10, 12] and all(m.value > 0 for m in loss)
    assert len(client.get_metric_history(run.info.run_id, "train/learning_rate")) == 2
    validation = client.get_metric_history(run.info.run_id, "eval/accuracy")
    assert len(validation) >= 6 and [m.step for m in validation] == sorted(m.step for m in validation)
    # final metrics: the latest eval/<metric> is the final score on the evaluation data
    final = manifest["metrics"]["eval"]
    assert run.data.metrics["eval/accuracy"] == pytest.approx(final["accuracy"])
    assert run.data.metrics["eval/macro_f1"] == pytest.approx(final["macro_f1"])
    # the report folder and the manifest as artifacts
    report = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert {"report/metrics.json", "report/report.md", "report/model_card.md"} <= report
    assert "domainfit.json" in {a.path for a in client.list_artifacts(run.info.run_id)}
    # the store sits beside the output folder, its artifacts too; one backend only, no bookkeeping left
    assert (folder / "mlflow.db").is_file() and (folder / "mlartifacts").is_dir()
    assert not (out / "tensorboard").exists() and not (out / "tracking.json").exists()


def test_a_resumed_run_continues_its_mlflow_run(tmp_path, tiny_model, store):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    folder, uri = store
    data = write_intents_csv(tmp_path / "d.csv", per_class=6)
    out = folder / "resumed"
    settings = dict(TINY, **{"data.train": str(data), "training.tracking": "mlflow"})

    def crash(event, state, info):
        if event == "step" and state.global_step == 7:
            raise KeyboardInterrupt  # as a user's Ctrl-C: after the checkpoint of step 6

    with pytest.raises(KeyboardInterrupt):
        domainfit.train(output=str(out), model=str(tiny_model), callbacks=[crash], **settings)
    client = MlflowClient(tracking_uri=uri)
    _, (first,) = _runs(client, "resumed")
    assert first.info.status == "FAILED" and (out / "tracking.json").is_file()

    result = domainfit.train(output=str(out), model=str(tiny_model), **settings)
    _, (run,) = _runs(client, "resumed")
    assert run.info.run_id == first.info.run_id == result.manifest["tracking"]["run_id"]
    assert run.info.status == "FINISHED"
    assert max(m.step for m in client.get_metric_history(run.info.run_id, "train/loss")) == 12


def test_tensorboard_uses_hugging_faces_names(tmp_path, tiny_model):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = write_intents_csv(tmp_path / "d.csv", per_class=6)
    out = tmp_path / "m"
    assert _cli_train(data, out, tiny_model, "--tracking", "tensorboard") == 0
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/learning_rate", "train/epoch", "eval/accuracy", "eval/macro_f1"} <= tags
    assert [e.step for e in events.Scalars("train/loss")] == [10, 12]


def test_missing_package_or_unknown_backend_fails_before_any_work(tmp_path, tiny_model, monkeypatch, capsys):
    from domainfit.training import tracking

    data = write_intents_csv(tmp_path / "d.csv", per_class=6)
    monkeypatch.setattr(tracking, "_installed", lambda name: name != "mlflow")
    assert _cli_train(data, tmp_path / "m", tiny_model, "--tracking", "mlflow") == 2
    err = capsys.readouterr().err
    assert "pip install 'domainfit[mlflow]'" in err and "Traceback" not in err
    assert not (tmp_path / "m").exists()

    assert _cli_train(data, tmp_path / "m", tiny_model, "--tracking", "wandb") == 2
    assert "training.tracking must be tensorboard, mlflow or none" in capsys.readouterr().err
