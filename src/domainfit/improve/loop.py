"""``domainfit improve RECIPE.yaml``: feedback → audit → retrain → gate → promote, as one loop.

A recipe names the served model (``REGISTRY/NAME``: its production version is the
champion), the feedback database, the frozen golden data of the gate, and the settings of
each step::

    model: models/intents            # REGISTRY/NAME
    feedback:
      db: sqlite:///feedback.db
      served_name: intents           # the name the server logged (default: NAME)
      new_labels: refuse             # refuse | skip | learn: corrections with labels the model lacks
      min_rows: 1                    # fewer new corrections: nothing to do
    golden: golden.csv
    audit: {mode: fast, drop_flagged: false}   # drop_flagged: leave flagged *old* rows out of the replay
    retrain: {replay: all, epochs: null}
    gate: {min_delta: 0.0, max_loss: 0.01, slice_column: null}
    work: improve-work               # where each step writes its result

Each run takes the corrections stored since the last run (a watermark on the feedback ids)
and works in ``work/run-N/``; ``work/state.json`` records each step's result as soon as it
is done, so a run killed half-way resumes at the step it was in (the retraining itself
resumes from its checkpoints). With no new corrections a run does nothing and says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError
from ..core.io import atomic_write_text
from ..core.ui import escape, say

__all__ = ["ImproveRecipe", "load_recipe", "improve"]

STEPS = ("export", "audit", "retrain", "gate", "promote")


@dataclass
class ImproveRecipe:
    model: str
    db: str
    golden: str
    work: str = "improve-work"
    served_name: str | None = None
    new_labels: str = "refuse"
    min_rows: int = 1
    audit: dict = field(default_factory=lambda: {"mode": "fast", "drop_flagged": False})
    retrain: dict = field(default_factory=lambda: {"replay": "all", "epochs": None})
    gate: dict = field(default_factory=dict)
    base: Path = Path(".")

    @property
    def registry(self) -> Path:
        return self.path(self.model).parent

    @property
    def name(self) -> str:
        return Path(self.model).name

    def path(self, value: str) -> Path:
        """A recipe path, relative to the recipe's folder."""
        p = Path(value)
        return p if p.is_absolute() else self.base / p


def load_recipe(path: str | Path) -> ImproveRecipe:
    """Read and check a recipe (unknown keys and missing parts named).

    Raises:
        ConfigError: a missing file, bad YAML, an unknown key or a bad value.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such recipe file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a recipe is a mapping (model, feedback, golden, ...).")
    known = {"model", "feedback", "golden", "audit", "retrain", "gate", "work"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))}).")
    for key in ("model", "feedback", "golden"):
        if not raw.get(key):
            raise ConfigError(f"{path}: '{key}' is missing.")
    feedback = raw["feedback"]
    if not isinstance(feedback, dict) or not feedback.get("db"):
        raise ConfigError(f"{path}: feedback.db (a SQLAlchemy URL) is missing.")
    extra = sorted(set(feedback) - {"db", "served_name", "new_labels", "min_rows"})
    if extra:
        raise ConfigError(f"{path}: unknown feedback key(s) {', '.join(extra)}.")
    recipe = ImproveRecipe(model=str(raw["model"]), db=str(feedback["db"]), golden=str(raw["golden"]),
                           work=str(raw.get("work") or "improve-work"), served_name=feedback.get("served_name"),
                           new_labels=str(feedback.get("new_labels", "refuse")),
                           min_rows=int(feedback.get("min_rows", 1)), base=path.parent)
    if recipe.new_labels not in ("refuse", "skip", "learn"):
        raise ConfigError(f"{path}: feedback.new_labels is refuse, skip or learn, not {recipe.new_labels!r}.")
    for section, allowed in (("audit", {"mode", "drop_flagged", "folds"}), ("retrain", {"replay", "epochs", "seed"}),
                             ("gate", {"min_delta", "max_loss", "slice_column", "slice_tolerance", "ece_tolerance"})):
        value = raw.get(section) or {}
        if not isinstance(value, dict) or set(value) - allowed:
            raise ConfigError(f"{path}: {section} takes {', '.join(sorted(allowed))}.")
        setattr(recipe, section, {**getattr(recipe, section), **value})
    return recipe


class _State:
    """``work/state.json``: the feedback watermark and every run's finished steps."""

    def __init__(self, folder: Path):
        self.file = folder / "state.json"
        self.data: dict[str, Any] = (json.loads(self.file.read_text(encoding="utf-8")) if self.file.is_file()
                                     else {"last_feedback_id": 0, "runs": []})

    def save(self) -> None:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.file, json.dumps(self.data, indent=2) + "\n")

    @property
    def open_run(self) -> dict | None:
        runs = self.data["runs"]
        return runs[-1] if runs and not runs[-1].get("finished") else None


def _champion(recipe: ImproveRecipe) -> tuple[int, Path]:
    from ..stores import Registry

    registry = Registry(recipe.registry)
    found = registry.production(recipe.name)
    if found is None:
        raise ConfigError(f"{recipe.name} in the registry {recipe.registry} has no production version to improve.")
    return found


def _export(recipe: ImproveRecipe, run: dict, folder: Path, champion: Path) -> dict:
    """The new corrections as text,label CSV; labels the champion lacks handled by the recipe."""
    import csv

    from ..artifact import read_manifest
    from ..stores import FeedbackStore

    store = FeedbackStore(recipe.db)
    served = recipe.served_name or recipe.name
    rows = list(store.rows(model=served, labelled_only=True, after_id=run["after_id"], up_to_id=run["up_to_id"]))
    known = set(read_manifest(champion).get("labels", []))
    unknown = sorted({r[1] for r in rows} - known)
    if unknown and recipe.new_labels == "refuse":
        raise ConfigError(f"feedback for {served} names label(s) the model does not know: "
                          f"{', '.join(unknown[:10])}. Nothing was changed. Set feedback.new_labels to learn (the "
                          "new model gets them) or skip (those corrections are left out).")
    kept = [r for r in rows if r[1] in known] if recipe.new_labels == "skip" else rows
    path = folder / "feedback.csv"
    folder.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows([r[0], r[1]] for r in kept)
    return {"file": str(path), "rows": len(kept), "skipped_unknown_labels": len(rows) - len(kept),
            "new_labels": unknown if recipe.new_labels == "learn" else []}


def _audit(recipe: ImproveRecipe, folder: Path, champion: Path, export: dict) -> dict:
    """Audit the champion's training rows plus the corrections; with ``drop_flagged``, a
    cleaned copy of the champion's rows (flagged ones left out) is what retrain replays."""
    import csv

    from ..artifact import read_manifest
    from .audit import audit, read_labelled
    from .retrain import training_rows

    manifest = read_manifest(champion)
    text_col = manifest["config"]["data"]["text_column"]
    label_col = manifest["config"]["data"]["label_column"]
    try:
        old, _ = training_rows(champion)
    except ConfigError as exc:
        return {"skipped": str(exc)}
    texts, labels = [t for t, _ in old], [lab for _, lab in old]
    combined = folder / "audit-input.csv"
    _, new_texts, new_labels = read_labelled(export["file"], min_labels=1)
    with open(combined, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts + new_texts, labels + new_labels))
    result = audit(combined, folder / "audit", mode=recipe.audit.get("mode", "fast"),
                   folds=int(recipe.audit.get("folds", 5)), model=manifest["base_model"]["name"])
    old_flagged = [i for i in result.flagged if i < len(texts)]
    out = {"report": str(folder / "audit" / "label_issues.csv"), "flagged": len(result.flagged),
           "flagged_old_rows": len(old_flagged), "flagged_corrections": len(result.flagged) - len(old_flagged)}
    if recipe.audit.get("drop_flagged"):
        dropped = set(old_flagged)
        cleaned = folder / "train-cleaned.csv"
        with open(cleaned, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow([text_col, label_col])
            writer.writerows((t, lab) for i, (t, lab) in enumerate(zip(texts, labels)) if i not in dropped)
        out["replay_from"] = str(cleaned)
    return out


def improve(recipe_path: str | Path, *, by: str | None = None) -> dict:
    """One run of the loop (see the module docstring); returns the run's record.

    Raises:
        ConfigError: a bad recipe, a model without a production version, feedback with
            labels the model lacks (``new_labels: refuse``), golden labels a model lacks.
    """
    from ..stores import FeedbackStore, check_name
    from .gate import GateResult, gate, promote_on_pass, write_gate_report
    from .retrain import retrain

    recipe = load_recipe(recipe_path)
    check_name(recipe.name)
    if not recipe.path(recipe.golden).is_file():
        raise ConfigError(f"golden data {recipe.path(recipe.golden)}: no such file")
    work = recipe.path(recipe.work)
    state = _State(work)
    run = state.open_run
    if run is None:
        version, champion = _champion(recipe)
        served = recipe.served_name or recipe.name
        store = FeedbackStore(recipe.db)
        last = store.last_id(served)
        after = state.data["last_feedback_id"]
        pending = sum(1 for _ in store.rows(model=served, after_id=after, up_to_id=last))
        if pending < recipe.min_rows:
            say(f"Nothing new: {pending} correction(s) for {escape(served)} since the last run "
                f"(at least {recipe.min_rows} needed). The registry is unchanged.")
            return {"nothing_new": True, "pending": pending}
        run = {"n": len(state.data["runs"]) + 1, "after_id": after, "up_to_id": last, "champion_version": version,
               "champion": str(champion), "steps": {}}
        state.data["runs"].append(run)
        state.save()
    else:
        say(f"Resuming run {run['n']} after step(s): {', '.join(run['steps']) or 'none'}.")
    folder = work / f"run-{run['n']}"
    champion = Path(run["champion"])
    steps = run["steps"]

    def done(step: str, result: dict) -> None:
        steps[step] = result
        state.save()
        say(f"[green]{step}[/]: {escape(json.dumps(result, default=str)[:300])}")

    if "export" not in steps:
        done("export", _export(recipe, run, folder, champion))
    if "audit" not in steps:
        done("audit", _audit(recipe, folder, champion, steps["export"]))
    if "retrain" not in steps:
        settings = recipe.retrain
        result = retrain(champion, [steps["export"]["file"]], folder / "candidate",
                         replay=settings.get("replay", "all"), epochs=settings.get("epochs"), seed=settings.get("seed"),
                         replay_from=steps["audit"].get("replay_from"))
        done("retrain", {"candidate": str(result.path), "metrics": result.manifest.get("metrics", {})})
    if "gate" not in steps:
        verdict = gate(folder / "candidate", champion, recipe.path(recipe.golden), **recipe.gate)
        write_gate_report(verdict, folder / "gate")
        done("gate", {"passed": verdict.passed, "reasons": verdict.reasons, "delta": verdict.delta,
                      "report": str(folder / "gate" / "gate.md")})
    if "promote" not in steps:
        promoted = None
        if steps["gate"]["passed"]:  # the verdict as the gate step stored it
            verdict = GateResult(**json.loads((folder / "gate" / "gate.json").read_text(encoding="utf-8")))
            promoted = promote_on_pass(verdict, folder / "candidate", str(recipe.registry / recipe.name), by=by)
        done("promote", {"version": promoted})
    run["finished"] = True
    state.data["last_feedback_id"] = run["up_to_id"]
    state.save()
    if steps["promote"]["version"] is not None:
        say(f"[green]Promoted[/] {escape(recipe.name)} version {steps['promote']['version']}.")
    else:
        say(f"[yellow]Refused[/]: the candidate stays out of production ({escape(steps['gate']['reasons'][0])}).")
    return run

