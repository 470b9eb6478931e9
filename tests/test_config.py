"""The run configuration: sources and their order, checks, and docs that stay true."""

from __future__ import annotations

import dataclasses
import re

import pytest
import yaml

from domainfit.core.config import DataConfig, MethodConfig, RunConfig, TrainingConfig, apply_overrides, load_config
from domainfit.core.errors import ConfigError
from domainfit.methods import get_method
from domainfit.methods.lora import LoraSettings
from helpers import ROOT

SECTIONS = {"": RunConfig, "data.": DataConfig, "training.": TrainingConfig, "method.": MethodConfig}


def _yaml(tmp_path, text: str):
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_need_nothing():
    cfg = load_config()
    assert cfg.task == "classification" and cfg.model == "default" and cfg.output is None
    assert cfg.training.batch_size == 32 and cfg.training.learning_rate is None
    assert cfg.data.text_column == "text" and cfg.method.name == "full" and cfg.method.options == {}


def test_yaml_then_overrides_then_keywords(tmp_path):
    path = _yaml(tmp_path, """
task: multilabel
output: from-yaml
data: {train: a.csv, text_column: utterance}
training: {epochs: 5, seed: 1, batch_size: 16, learning_rate: 1e-4}
method: {name: lora, options: {r: 4}}
""")
    cfg = load_config(path, ["training.epochs=3", "training.seed=2", "method.options.alpha=8"],
                      output="from-keyword", **{"training.seed": 7, "data.train": None})
    assert cfg.task == "multilabel"                            # YAML only
    assert cfg.training.batch_size == 16                       # YAML only
    assert cfg.training.learning_rate == 1e-4                  # YAML reads 1e-4 as text; still a number
    assert cfg.training.epochs == 3                            # override beats YAML
    assert cfg.training.seed == 7                              # keyword beats override and YAML
    assert cfg.output == "from-keyword"
    assert cfg.data.train == "a.csv" and cfg.data.text_column == "utterance"  # None keywords are ignored
    assert cfg.method.name == "lora" and cfg.method.options == {"r": 4, "alpha": 8}


def test_resolved_config_round_trips():
    cfg = load_config(None, ["training.epochs=2", "method.options.r=4"], output="m", **{"data.train": "t.csv"})
    assert RunConfig.from_dict(cfg.to_dict()).check() == cfg


@pytest.mark.parametrize("source, bad, section", [
    ("overrides", "training.epoch=3", "training."),
    ("overrides", "datas.train=x", ""),
    ("yaml", "data:\n  txt_column: t\n", "data."),
    ("yaml", "method:\n  nam: lora\n", "method."),
])
def test_unknown_settings_list_the_known_ones(tmp_path, source, bad, section):
    with pytest.raises(ConfigError) as err:
        if source == "overrides":
            load_config(None, [bad])
        else:
            load_config(_yaml(tmp_path, bad))
    message = str(err.value)
    assert "Unknown setting" in message
    for field in dataclasses.fields(SECTIONS[section]):
        assert f"{section}{field.name}" in message


def test_unknown_method_option_lists_the_known_ones():
    with pytest.raises(ConfigError, match="rank.*known: alpha, dropout, r, target_modules, use_dora"):
        get_method("lora").parse({"rank": 8})


@pytest.mark.parametrize("override, names", [
    ("data.val_fraction=0.5", "data.val_fraction"),
    ("data.val_fraction=0", "data.val_fraction"),
    ("data.on_bad_rows=drop", "data.on_bad_rows"),
    ("training.epochs=0", "training.epochs"),
    ("training.learning_rate=-1e-4", "training.learning_rate"),
    ("training.head_learning_rate=0", "training.head_learning_rate"),
    ("training.batch_size=0", "training.batch_size"),
    ("training.grad_accumulation=0", "training.grad_accumulation"),
    ("training.grad_accumulation=3", "training.batch_size must be a multiple"),
    ("training.warmup_ratio=1", "training.warmup_ratio"),
    ("training.max_length=0", "training.max_length"),
    ("training.save_steps=-5", "training.save_steps"),
    ("training.eval_every_epochs=0", "training.eval_every_epochs"),
    ("training.precision=fp16", "training.precision"),
    ("training.pooling=max", "training.pooling"),
    ("training.dropout=1", "training.dropout"),
    ("training.label_smoothing=-0.1", "training.label_smoothing"),
    ("training.early_stopping_patience=-1", "training.early_stopping_patience"),
    ("training.weight_decay=-0.01", "training.weight_decay"),
    ("training.max_grad_norm=-1", "training.max_grad_norm"),
])
def test_out_of_range_values_are_refused(override, names):
    with pytest.raises(ConfigError, match=re.escape(names)):
        load_config(None, [override])


@pytest.mark.parametrize("override, message", [
    ("training.epochs=many", "training.epochs must be a number, got 'many'"),
    ("training.batch_size=2.5", "training.batch_size must be a whole number"),
    ("training.seed=true", "training.seed must be a whole number"),
    ("training.freeze_embeddings=maybe", "training.freeze_embeddings must be true or false"),
    ("training.epochs=.inf", "training.epochs must be a number"),
    ("data.val_fraction=[0.1]", "data.val_fraction must be a number"),
])
def test_values_of_the_wrong_type_are_refused(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, [override])


def test_apply_overrides_parses_values():
    raw = apply_overrides({"training": {"epochs": 8}}, [
        "training.learning_rate=1e-4", "training.head_learning_rate=2E-3", "training.epochs=3",
        "training.warmup_ratio=0.1", "training.freeze_embeddings=false", "training.dropout=null",
        "data.text_column=utterance", "method.options.target_modules=[query, value]", " output = my model ",
    ])
    assert raw["training"] == {"epochs": 3, "learning_rate": 1e-4, "head_learning_rate": 2e-3, "warmup_ratio": 0.1,
                               "freeze_embeddings": False, "dropout": None}
    assert raw["data"] == {"text_column": "utterance"}
    assert raw["method"] == {"options": {"target_modules": ["query", "value"]}}
    assert raw["output"] == "my model"
    assert load_config(None, ["training.save_steps=1e3"]).training.save_steps == 1000


@pytest.mark.parametrize("bad", ["training.epochs", "=3", "training.epochs.max=3"])
def test_malformed_overrides_are_refused(bad):
    raw = {"training": {"epochs": 8}}
    with pytest.raises(ConfigError, match="key=value|not a section"):
        apply_overrides(raw, [bad])


@pytest.mark.parametrize("text, message", [
    ("training: [1, 2]\n", "'training' must be a mapping"),
    ("- a\n- b\n", "'config' must be a mapping"),
    ("training: {epochs: 3\n", "not valid YAML"),
])
def test_bad_yaml_files(tmp_path, text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(_yaml(tmp_path, text))


def test_missing_yaml_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_docs_mention_every_setting():
    docs = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = [f"{prefix}{field.name}" for prefix, cls in SECTIONS.items() for field in dataclasses.fields(cls)
               if field.name not in ("data", "training", "method") and f"`{prefix}{field.name}`" not in docs]
    missing += [f"method.options.{field.name}" for field in dataclasses.fields(LoraSettings)
                if f"`method.options.{field.name}`" not in docs]
    assert not missing, f"docs/configuration.md does not describe: {', '.join(missing)}"


def test_docs_show_the_real_defaults():
    """Each table row `| `section.field` | `default` |` matches the dataclass default."""
    docs = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([a-z_.]+)` \| `([^`]*)` \|", docs, flags=re.M))
    wrong = []
    for prefix, cls in SECTIONS.items():
        for field in dataclasses.fields(cls):
            key = f"{prefix}{field.name}"
            if key not in rows or field.default is dataclasses.MISSING:
                continue
            shown = yaml.safe_load(rows[key]) if rows[key] else None
            if shown != field.default:
                wrong.append(f"{key}: docs say {rows[key]!r}, code says {field.default!r}")
    assert not wrong, "; ".join(wrong)
    assert len(rows) >= 20


def test_every_field_has_help():
    for cls in (RunConfig, DataConfig, TrainingConfig, MethodConfig):
        for field in dataclasses.fields(cls):
            if field.name not in ("data", "training", "method"):
                assert field.metadata.get("help"), f"{cls.__name__}.{field.name}"


SHIPPED = sorted(p for folder in ("recipes", "examples") for suffix in ("yaml", "yml")
                 for p in (ROOT / folder).rglob(f"*.{suffix}"))


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(ROOT)) for p in SHIPPED])
def test_shipped_yaml_loads(path):
    import yaml

    if "intents" in yaml.safe_load(path.read_text(encoding="utf-8")):  # an app recipe (customer service)
        from pathlib import Path

        from domainfit.apps.customer_service import load_recipe
        from domainfit.apps.customer_service.answers import read_answers

        recipe = load_recipe(path)
        get_method(recipe.intents.method)
        assert read_answers(recipe.answers) and Path(recipe.intents.data).name == "train.csv"
        return
    if "sentiment" in yaml.safe_load(path.read_text(encoding="utf-8")):  # an app recipe (monitoring)
        from pathlib import Path

        from domainfit.apps.monitor import load_recipe, load_rules, read_entities

        recipe = load_recipe(path)
        get_method(recipe.sentiment.method)
        assert len(read_entities(recipe.entities)) >= 45 and Path(recipe.sentiment.data).name == "train.csv"
        assert load_rules(recipe.rules).rules
        return
    if "interactions" in yaml.safe_load(path.read_text(encoding="utf-8")):  # an app recipe (recommendation)
        from domainfit.apps.recommend import load_recipe
        from domainfit.apps.recommend.data import read_interactions, read_items

        recipe = load_recipe(path)
        items = read_items(recipe.items, recipe.columns.items)
        data = read_interactions(recipe.interactions, items, recipe.columns.interactions,
                                 threshold=recipe.positive_rating)
        assert len(items) >= 50 and data.positive.any() and not data.positive.all()
        return
    cfg = load_config(path)
    get_method(cfg.method.name).parse(cfg.method.options)
    assert cfg.output and cfg.data.train


def test_methods_doc_lists_every_option_with_its_default():
    """docs/methods.md has a `### `name`` section per method whose table shows each option's real default."""
    import json

    from domainfit.methods import METHODS

    docs = (ROOT / "docs" / "methods.md").read_text(encoding="utf-8")
    wrong = []
    for name, method in METHODS.items():
        if f"### `{name}`" not in docs:
            wrong.append(f"no section for {name}")
            continue
        section = docs.split(f"### `{name}`", 1)[1].split("\n### ", 1)[0]
        rows = dict(re.findall(r"^\| `method\.options\.([a-z_]+)` \| `([^`]*)` \|", section, flags=re.M))
        for field in dataclasses.fields(method.settings):
            default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
            if field.name not in rows or json.loads(rows[field.name]) != default:
                wrong.append(f"{name}.{field.name}: docs {rows.get(field.name)!r}, code {default!r}")
    assert not wrong, "; ".join(wrong)
