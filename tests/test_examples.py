"""Every shipped example and recipe runs as shipped, from a clone, on the data shipped with it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from domainfit.core.config import expand_env, load_config
from domainfit.core.errors import ConfigError
from helpers import ROOT, run_cli

pytestmark = pytest.mark.integration

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))


def _kind(path: Path) -> str:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if "intents" in raw:
        return "customer-service"
    if "sentiment" in raw and "entities" in raw:
        return "monitor"
    if "interactions" in raw and "items" in raw:
        return "recommend"
    if "data" in raw and "task" in raw:
        return "train"
    raise AssertionError(f"{path}: a shipped YAML of a kind this test does not know how to run; teach it")


def test_there_is_something_to_run():
    assert EXAMPLES and RECIPES


@pytest.mark.parametrize("path", EXAMPLES + RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_shipped_yaml_runs_as_shipped_from_the_repository_root(path, tmp_path):
    out = tmp_path / "out"
    kind = _kind(path)
    rel = str(path.relative_to(ROOT))
    if kind == "train":
        done = run_cli("train", rel, "--output", str(out), cwd=ROOT, unset=("DOMAINFIT_DATA",), timeout=600)
        assert done.returncode == 0, done.stderr + done.stdout
        manifest = json.loads((out / "domainfit.json").read_text(encoding="utf-8"))
        assert manifest["data"]["train"]["source"].startswith("examples/data/")
        assert manifest["metrics"] and (out / "report" / "model_card.md").is_file()
    elif kind == "monitor":
        done = run_cli("app", "monitor", "train", rel, "--output", str(out), cwd=ROOT, unset=("DOMAINFIT_DATA",),
                       timeout=900)
        assert done.returncode == 0, done.stderr + done.stdout
        meta = json.loads((out / "bundle.json").read_text(encoding="utf-8"))
        assert meta["data"]["sentiment"]["source"].endswith("examples/data/financial_phrasebank/train.csv")
        assert meta["entities"]["count"] >= 45 and (out / meta["scorer"]["path"]).is_dir()
        scored = run_cli("app", "monitor", "evaluate", str(out), "--data", "examples/data/financial_phrasebank/train.csv",
                         "--json", cwd=ROOT)
        assert scored.returncode == 0, scored.stderr
        assert json.loads(scored.stdout)["accuracy"] > 0.6  # the sentences it was trained on
    elif kind == "recommend":
        done = run_cli("app", "recommend", "train", rel, "--output", str(out), cwd=ROOT, unset=("DOMAINFIT_DATA",),
                       timeout=900)
        assert done.returncode == 0, done.stderr + done.stdout
        meta = json.loads((out / "bundle.json").read_text(encoding="utf-8"))
        assert meta["recipe"]["items"].endswith("examples/data/movielens_latest_small/items.csv")
        assert meta["items"]["count"] == 120 and set(meta["components"]) >= {"ease", "tower"}
        shown = run_cli("app", "recommend", "recommend", str(out), "--user", "1", "-k", "5", "--json", cwd=ROOT)
        assert shown.returncode == 0, shown.stderr
        items = json.loads(shown.stdout)["items"]
        assert len(items) == 5 and all(r["because"] for r in items)
    else:
        done = run_cli("app", "customer-service", "train", rel, "--output", str(out), cwd=ROOT,
                       unset=("DOMAINFIT_DATA",), timeout=600)
        assert done.returncode == 0, done.stderr + done.stdout
        asked = run_cli("app", "customer-service", "ask", str(out), "how do I activate the card I just got",
                        "--json", cwd=ROOT)
        assert asked.returncode == 0, asked.stderr
        reply = json.loads(asked.stdout)
        assert reply["candidate_intent"] == "activate_my_card" and reply["answer"]


def test_every_path_in_a_shipped_yaml_exists_with_and_without_the_environment(monkeypatch):
    """The shipped defaults point into the repository; DOMAINFIT_DATA replaces them."""
    for path in EXAMPLES + RECIPES:
        monkeypatch.delenv("DOMAINFIT_DATA", raising=False)
        raw = expand_env(yaml.safe_load(path.read_text(encoding="utf-8")))
        base = ROOT if path.parent.name == "examples" else path.parent
        files = [v for v in _strings(raw) if v.endswith((".csv", ".jsonl", ".tsv", ".parquet"))]
        assert files, path
        for value in files:
            assert (base / value).resolve().is_file(), f"{path}: {value}"
        monkeypatch.setenv("DOMAINFIT_DATA", "/srv/data")
        moved = [v for v in _strings(expand_env(yaml.safe_load(path.read_text(encoding="utf-8"))))
                 if v.startswith("/srv/data/")]
        assert moved, f"{path}: no data path follows DOMAINFIT_DATA"


def _strings(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def test_environment_references_in_a_config(tmp_path, monkeypatch):
    config = tmp_path / "run.yaml"
    config.write_text("data:\n  train: ${MY_DATA:-fallback}/train.csv\n  eval: ${MY_EVAL}\n", encoding="utf-8")
    monkeypatch.delenv("MY_DATA", raising=False)
    monkeypatch.delenv("MY_EVAL", raising=False)
    with pytest.raises(ConfigError, match=r"\$\{MY_EVAL\} names the environment variable MY_EVAL, which is not set"):
        load_config(config)
    monkeypatch.setenv("MY_EVAL", "test.csv")
    assert load_config(config).data.train == "fallback/train.csv"
    monkeypatch.setenv("MY_DATA", "rel/dir")  # relative, from the shell: made absolute against the working folder
    monkeypatch.chdir(tmp_path)
    cfg = load_config(config)
    assert cfg.data.train == str(tmp_path / "rel" / "dir" / "train.csv")
    assert cfg.data.eval == str(tmp_path / "test.csv")


def test_train_takes_the_config_as_an_argument_or_an_option_not_two(tmp_path):
    one, two = tmp_path / "a.yaml", tmp_path / "b.yaml"
    for p in (one, two):
        p.write_text("task: classification\n", encoding="utf-8")
    done = run_cli("train", str(one), "--config", str(two), "--output", str(tmp_path / "m"))
    assert done.returncode == 2 and "two configurations given" in done.stderr + done.stdout
    missing = run_cli("train", str(tmp_path / "nope.yaml"), "--output", str(tmp_path / "m"))
    assert missing.returncode == 2 and "nope.yaml does not exist" in missing.stderr + missing.stdout
