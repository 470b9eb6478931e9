"""The registry under failure (issue 16, items 2 and 8): a broken version is never added or
promoted, an unreadable entry never hides the others, and admin calls on unknown names
create nothing. Real folders, real artifacts (a train-free zero-shot model of the tiny BERT)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import domainfit
from domainfit.cli import main
from domainfit.core.errors import DomainfitError, ManifestError, RegistryConflict, RegistryError
from domainfit.stores import Registry


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, tiny_model):
    tmp = tmp_path_factory.mktemp("registry-model")
    labels = tmp / "labels.csv"
    labels.write_text("label,description\ncard,my card\nrefund,money back\n", encoding="utf-8")
    out = tmp / "model"
    domainfit.train(output=str(out), model=str(tiny_model), **{"method.name": "zeroshot", "data.labels": str(labels)})
    return out


@pytest.fixture()
def broken(artifact, tmp_path):
    """A copy of the artifact whose weights lost their second half."""
    folder = tmp_path / "broken"
    shutil.copytree(artifact, folder)
    _truncate(folder / "adapter.safetensors")
    return folder


def _truncate(path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _cli(capsys, *args) -> tuple[int, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def _tree(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_add_refuses_a_broken_artifact_and_creates_nothing(artifact, broken, tmp_path, capsys):
    reg = Registry(tmp_path / "reg")
    with pytest.raises(ManifestError, match="adapter.safetensors is not a readable safetensors file"):
        reg.add("intents", broken)
    assert not (tmp_path / "reg" / "intents").exists()
    reg.add("intents", artifact)
    before, files = (tmp_path / "reg" / "intents" / "registry.json").read_bytes(), _tree(tmp_path / "reg")
    code, err = _cli(capsys, "registry", "add", tmp_path / "reg", "intents", broken, "--stage", "production")
    assert code == 2 and "adapter.safetensors" in err and "Traceback" not in err
    assert (tmp_path / "reg" / "intents" / "registry.json").read_bytes() == before
    assert _tree(tmp_path / "reg") == files  # no version folder, no staging leftovers
    code, err = _cli(capsys, "registry", "add", tmp_path / "reg", "other", broken)
    assert code == 2 and not (tmp_path / "reg" / "other").exists()


@pytest.mark.parametrize("via", ["api", "cli"])
def test_a_broken_version_is_never_promoted(artifact, tmp_path, capsys, via):
    reg = Registry(tmp_path / "reg")
    reg.add("intents", artifact, stage="production")
    reg.add("intents", artifact)
    _truncate(reg.version_path("intents", 2) / "adapter.safetensors")  # broken after it was added
    state = tmp_path / "reg" / "intents" / "registry.json"
    before = state.read_bytes()
    if via == "api":
        with pytest.raises(RegistryConflict, match="version 2 of intents is broken, so it is not made") as caught:
            reg.promote("intents", 2)
        assert caught.value.status == 409 and caught.value.code == "broken_version"
    else:
        code, err = _cli(capsys, "registry", "promote", tmp_path / "reg", "intents", 2)
        assert code == 2 and "adapter.safetensors" in err and "Traceback" not in err
    assert state.read_bytes() == before
    assert reg.production("intents")[0] == 1


def test_add_to_production_checks_the_copy_before_anything_changes(artifact, tmp_path, monkeypatch):
    """A copy damaged on the way in (a full disk, a flaky mount) is never added as production."""
    import domainfit.stores.registry as registry_module

    reg = Registry(tmp_path / "reg")
    reg.add("intents", artifact, stage="production")
    before, files = reg.state_file("intents").read_bytes(), _tree(tmp_path / "reg")
    real_copytree = shutil.copytree

    def damaging_copytree(src, dst, *args, **kwargs):
        done = real_copytree(src, dst, *args, **kwargs)
        if (Path(dst) / "adapter.safetensors").is_file():  # the model folder, not a subfolder such as report/
            _truncate(Path(dst) / "adapter.safetensors")
        return done

    monkeypatch.setattr(registry_module.shutil, "copytree", damaging_copytree)
    with pytest.raises(RegistryConflict, match="version 2 of intents is broken"):
        reg.add("intents", artifact, stage="production")
    assert reg.state_file("intents").read_bytes() == before and _tree(tmp_path / "reg") == files


def test_rollback_to_a_broken_version_is_refused(artifact, tmp_path):
    reg = Registry(tmp_path / "reg")
    reg.add("intents", artifact, stage="production")
    reg.add("intents", artifact, stage="production")
    (reg.version_path("intents", 1) / "tokenizer.json").unlink()
    before = (tmp_path / "reg" / "intents" / "registry.json").read_bytes()
    with pytest.raises(RegistryConflict, match="tokenizer.json is missing"):
        reg.rollback("intents")
    assert (tmp_path / "reg" / "intents" / "registry.json").read_bytes() == before


def test_bad_entries_are_reported_and_skipped(artifact, tmp_path, capsys):
    """A leftover of a remove cut short, an empty and a corrupt registry.json, stray files:
    the good model is still listed and served; each bad one is named with a clear reason."""
    root = tmp_path / "reg"
    reg = Registry(root)
    reg.add("good", artifact, stage="production")
    reg.add("empty", artifact)
    reg.add("garbled", artifact)
    (root / "empty" / "registry.json").write_text("")
    (root / "garbled" / "registry.json").write_text('{"versions": [{"version": "one"}]')
    shutil.copytree(root / "good", root / ".gone.removed")
    (root / "notes.txt").write_text("not a model")
    (root / "half-added").mkdir()  # an add in progress: no registry.json yet
    assert reg.names() == ["good"]
    problems = reg.problems()
    assert set(problems) == {"empty", "garbled"}
    assert "is corrupt: it is empty" in problems["empty"] and "not valid JSON" in problems["garbled"]
    with pytest.raises(RegistryError, match="is corrupt: it is empty"):
        reg.state("empty")
    assert [r["name"] for r in reg.listing()] == ["good"]
    code, err = _cli(capsys, "registry", "list", root)
    assert code == 0 and "empty is left out" in err and "garbled is left out" in err
    code, err = _cli(capsys, "registry", "promote", root, "empty", 1)
    assert code == 2 and "is corrupt" in err and "Traceback" not in err
    code, err = _cli(capsys, "registry", "add", root, "empty", artifact)  # never overwrites a corrupt entry
    assert code == 2 and (root / "empty" / "registry.json").read_text() == ""


def test_admin_calls_on_unknown_names_create_nothing(artifact, tmp_path):
    root = tmp_path / "reg"
    reg = Registry(root)
    reg.add("intents", artifact)
    before = _tree(root)
    for call in (lambda: reg.promote("nope", 1), lambda: reg.rollback("nope"), lambda: reg.remove("nope"),
                 lambda: reg.remove("nope", 1), lambda: reg.version_path("nope", 1), lambda: reg.state("nope")):
        with pytest.raises(RegistryError, match="no model named 'nope'") as caught:
            call()
        assert caught.value.status == 404 and caught.value.code == "unknown_model"
    assert _tree(root) == before
    with pytest.raises(DomainfitError, match="no version 7"):
        reg.promote("intents", 7)
    assert _tree(root) == before


def test_remove_after_a_remove_cut_short(artifact, tmp_path):
    root = tmp_path / "reg"
    reg = Registry(root)
    reg.add("intents", artifact)
    (root / ".intents.removed").mkdir()  # what an interrupted earlier remove leaves
    (root / ".intents.removed" / "x").write_text("x")
    reg.remove("intents")
    assert reg.names() == [] and reg.problems() == {}
    reg.add("intents", artifact)
    assert reg.names() == ["intents"]


def test_a_verified_version_keeps_its_record(artifact, tmp_path):
    reg = Registry(tmp_path / "reg")
    reg.add("intents", artifact, stage="production")
    copied = json.loads((reg.version_path("intents", 1) / "domainfit.json").read_text())
    assert copied["files"] == json.loads((artifact / "domainfit.json").read_text())["files"]
    assert domainfit.artifact.verify_artifact(reg.version_path("intents", 1))["task"] == "classification"
