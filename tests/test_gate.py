"""The champion/challenger gate on real (tiny) models: a pass, a refusal of a worse model,
promotion with the registry's history, and every bad input with exit code 2."""

from __future__ import annotations

import json

import pytest

import domainfit
from domainfit.core.errors import ConfigError
from domainfit.improve.gate import gate
from domainfit.stores import Registry
from helpers import fast_settings, run_cli, write_task_data


def _golden(path, rows):
    path.write_text("text,label,channel\n" + "".join(f"{t},{lab},{c}\n" for t, lab, c in rows), encoding="utf-8")
    return path


GOLDEN = [("where is my card", "card", "app"), ("card not arrived yet", "card", "web"),
          ("when will my card arrive", "card", "app"), ("refund my order", "refund", "web"),
          ("money back please", "refund", "app"), ("i want a refund", "refund", "web"),
          ("forgot my password", "password", "app"), ("reset password", "password", "web"),
          ("can not login", "password", "app")] * 3


@pytest.fixture(scope="module")
def worse(tmp_path_factory, tiny_model):
    """A model trained on rotated labels (card↔refund↔password): wrong on nearly everything."""
    folder = tmp_path_factory.mktemp("worse")
    data = write_task_data(folder, "classification")
    rotated = data.read_text().replace('"card"', '"tmp"').replace('"refund"', '"card"').replace(
        '"password"', '"refund"').replace('"tmp"', '"password"')
    data.write_text(rotated)
    domainfit.train(output=str(folder / "m"), model=str(tiny_model),
                    **fast_settings(**{"data.train": str(data), "training.epochs": 4}))
    return folder / "m"


def test_a_model_passes_against_itself_and_a_worse_one_is_refused(served_models, worse, tmp_path):
    golden = _golden(tmp_path / "golden.csv", GOLDEN)
    same = gate(served_models[0], served_models[0], golden)
    assert same.passed and same.delta == 0 and same.ci == (0.0, 0.0) and same.mcnemar_p == 1.0
    assert {s["slice"] for s in same.slices} == {"card", "refund", "password"}
    refused = gate(worse, served_models[0], golden)
    assert not refused.passed and refused.delta < -0.5 and refused.mcnemar_p < 0.001
    assert set(refused.regressed_slices) == {"card", "refund", "password"}
    assert any("below the champion" in r for r in refused.reasons)
    by_channel = gate(worse, served_models[0], golden, slice_column="channel")
    assert {s["slice"] for s in by_channel.slices} == {"app", "web"}
    # The other way round: far more accurate, but the tiny model's probabilities (about 0.5
    # for answers that are all right) are further from its accuracy than the worse model's.
    underconfident = gate(served_models[0], worse, golden)
    assert not underconfident.passed and underconfident.ci[0] > 0.3
    assert underconfident.reasons == [r for r in underconfident.reasons if r.startswith("calibration is worse")]
    better = gate(served_models[0], worse, golden, ece_tolerance=1.0)
    assert better.passed and better.reasons[0].startswith("accuracy 1.0000 against")


def test_gate_command_promotes_only_on_a_pass_and_records_why(served_models, worse, tmp_path):
    golden = _golden(tmp_path / "golden.csv", GOLDEN)
    root = tmp_path / "registry"
    Registry(root).add("intents", worse, stage="production")
    champion = f"{root}/intents"
    refused = run_cli("gate", str(worse), "--champion", str(served_models[0]), "--data", str(golden), "--json",
                      "--promote", champion, "--output", str(tmp_path / "refused"))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    body = json.loads(refused.stdout)
    assert body["passed"] is False and body["promoted_version"] is None
    assert [v["version"] for v in Registry(root).state("intents")["versions"]] == [1]  # nothing added
    assert "**Refused**" in (tmp_path / "refused" / "gate.md").read_text()

    passed = run_cli("gate", str(served_models[0]), "--champion", champion, "--data", str(golden), "--json",
                     "--promote", champion, "--ece-tolerance", "1", "--output", str(tmp_path / "passed"), env={"DOMAINFIT_USER": "ops-anna"})
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert json.loads(passed.stdout)["promoted_version"] == 2
    assert Registry(root).production("intents")[0] == 2
    event = Registry(root).history("intents")[-1]
    assert event["action"] == "promote" and event["version"] == 2 and event["previous"] == 1
    assert event["by"] == "ops-anna" and event["reason"].startswith("gate passed on")
    back = run_cli("registry", "rollback", str(root), "intents", "--reason", "complaints")
    assert back.returncode == 0, back.stderr
    assert Registry(root).production("intents")[0] == 1 and Registry(root).history("intents")[-1]["reason"] == "complaints"
    shown = run_cli("registry", "history", str(root), "intents")
    assert shown.returncode == 0 and "ops-anna" in shown.stdout and "rollback" in shown.stdout


def test_gate_bad_input_exits_2_and_promotes_nothing(served_models, tiny_model, tmp_path):
    golden = _golden(tmp_path / "golden.csv", GOLDEN)
    unknown = _golden(tmp_path / "unknown.csv", GOLDEN + [("open an account", "new_account", "app")])
    data = write_task_data(tmp_path, "classification")
    two = data.read_text().splitlines()
    (tmp_path / "two.jsonl").write_text("\n".join(r for r in two if '"password"' not in r) + "\n")
    domainfit.train(output=str(tmp_path / "two"), model=str(tiny_model),
                    **fast_settings(**{"data.train": str(tmp_path / "two.jsonl"), "training.epochs": 1}))
    with pytest.raises(ConfigError, match="different labels.*only the champion has password"):
        gate(tmp_path / "two", served_models[0], golden)
    root = tmp_path / "registry"
    Registry(root).add("intents", served_models[0], stage="production")
    for args, message in (([str(served_models[1]), "--champion", str(served_models[0]), "--data", str(unknown)],
                           "labels the models do not know: new_account"),
                          ([str(tmp_path / "two"), "--champion", f"{root}/intents", "--data", str(golden),
                            "--promote", f"{root}/intents"], "different labels"),
                          ([str(served_models[1]), "--champion", f"{root}/nobody", "--data", str(golden)],
                           "neither a model folder"),
                          ([str(served_models[1]), "--champion", str(served_models[0]), "--data",
                            str(tmp_path / "missing.csv")], "no such file")):
        bad = run_cli("gate", *args, "--output", str(tmp_path / "bad"))
        assert bad.returncode == 2 and message in bad.stdout + bad.stderr, bad.stdout + bad.stderr
        assert "Traceback" not in bad.stderr
    assert [v["version"] for v in Registry(root).state("intents")["versions"]] == [1]
