"""Runs side by side: the settings that differ, the final metrics, overlaid learning curves.

Plain data in (a model folder's manifest and the records of its ``metrics.jsonl``, read by
:mod:`domainfit.artifact.runs`), plain data and files out: what ``domainfit runs compare``
and ``domainfit runs list`` show.

Example:
    >>> a = summarize_run("a", "a", manifest_a, log_a)         # doctest: +SKIP
    >>> b = summarize_run("b", "b", manifest_b, log_b)         # doctest: +SKIP
    >>> write_comparison(compare([a, b]), "compare.html")      # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError
from ..core.io import atomic_write_text
from .metrics import metric_is_better

__all__ = ["RunSummary", "Row", "Comparison", "summarize_run", "compare", "format_value", "comparison_markdown",
           "comparison_html", "write_comparison", "curves_png"]

Curve = list[tuple[int, float]]

# Not compared: every run has its own output folder, and the columns already name it.
_IGNORED_SETTINGS = ("output",)


@dataclass
class RunSummary:
    """One model folder as a run.

    Attributes:
        name: how the run is shown (the folder as given, or relative to the listed root).
        metrics: the final metrics (numbers only), from the data named by ``scored_on``
            (``eval``: the evaluation file; ``validation``: the validation data).
        scored_data: that data in words, and ``scored_key`` what must be equal for two runs'
            metrics to be comparable (its fingerprint, or the split that made it).
        settings: the resolved configuration as flat dotted keys, with the base model and
            the data's fingerprints (what a difference in results may come from).
        training: steps, trainable parameters... (shown with the metrics, never bold).
        train_curve / eval_curve: ``(step, value)`` of the training loss and of the validation
            metric ``eval_metric``.
    """

    name: str
    path: str
    task: str
    method: str
    base_model: str
    created_at: str
    primary_metric: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    scored_on: str | None = None
    scored_data: str | None = None
    scored_key: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    train_curve: Curve = field(default_factory=list)
    eval_curve: Curve = field(default_factory=list)
    eval_metric: str | None = None

    @property
    def primary_value(self) -> float | None:
        return self.metrics.get(self.primary_metric) if self.primary_metric else None

    @property
    def date(self) -> str:
        """When the model was made, to the minute (``2026-05-01 14:03``, UTC)."""
        return self.created_at.replace("T", " ")[:16]

    def as_row(self) -> dict:
        """What ``domainfit runs list --json`` prints for the run (``path``: its name; ``folder``:
        the folder as found or given)."""
        return {"path": self.name, "folder": self.path, "task": self.task, "method": self.method, "base_model": self.base_model,
                "primary_metric": self.primary_metric, "value": self.primary_value, "scored_on": self.scored_on,
                "created_at": self.created_at}


def _flat(prefix: str, value: Any, out: dict) -> None:
    if isinstance(value, dict):  # an empty mapping (no method options) adds no key
        for key, inner in value.items():
            _flat(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = value


def _settings(manifest: dict) -> dict:
    flat: dict = {}
    _flat("", manifest.get("config") or {}, flat)
    for key in _IGNORED_SETTINGS:
        flat.pop(key, None)
    base = manifest.get("base_model") or {}
    flat["base_model.name"] = base.get("name")
    flat["base_model.sha256"] = (base.get("weights_sha256") or "")[:12] or None
    for split, record in sorted((manifest.get("data") or {}).items()):
        if isinstance(record, dict) and record.get("sha256"):
            flat[f"data_sha256.{split}"] = record["sha256"][:12]
    flat["domainfit_version"] = manifest.get("domainfit_version")
    return flat


def _scored(manifest: dict) -> tuple[str | None, dict, str | None, str | None]:
    """Which data the final metrics are from, the metrics, the data in words and its key."""
    metrics = manifest.get("metrics") or {}
    which = next((k for k in ("eval", "validation") if isinstance(metrics.get(k), dict)),
                 next((k for k, v in metrics.items() if isinstance(v, dict)), None))
    if which is None:
        return None, {}, None, None
    data = manifest.get("data") or {}
    record = data.get(which) if isinstance(data.get(which), dict) else None
    if record and record.get("sha256"):
        return which, metrics[which], f"{which}: {record.get('source')} (sha256 {record['sha256'][:12]})", \
            record["sha256"]
    # the validation share split from the training data: the same split needs the same data and seed
    config = manifest.get("config") or {}
    train = (data.get("train") or {}).get("sha256")
    seed = (config.get("training") or {}).get("seed")
    fraction = (config.get("data") or {}).get("val_fraction")
    words = f"{which}: {fraction:.0%} of train, seed {seed}" if isinstance(fraction, (int, float)) else which
    return which, metrics[which], words, f"{which}:{train}:{seed}:{fraction}"


def _curves(log: list[dict], history: list[dict]) -> tuple[Curve, Curve, str | None]:
    train = [(int(r["step"]), float(r["loss"])) for r in log
             if isinstance(r.get("loss"), (int, float)) and isinstance(r.get("step"), int)]
    records = [r for r in log if any(k.startswith("val_") for k in r)] or list(history or [])
    key = next((k for r in records for k in r if k.startswith("val_") and isinstance(r[k], (int, float))), None)
    evals = [(int(r["step"]), float(r[key])) for r in records
             if key and isinstance(r.get(key), (int, float)) and isinstance(r.get("step"), int)]
    return train, evals, key[4:] if key else None


def summarize_run(name: str, path: str, manifest: dict, log: list[dict] | None = None) -> RunSummary:
    """A run from its checked manifest and the records of its ``metrics.jsonl`` (without
    them, the validation points of the manifest's training history)."""
    scored_on, scored, words, key = _scored(manifest)
    numbers = {k: v for k, v in scored.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    primary = scored.get("primary_metric") if isinstance(scored.get("primary_metric"), str) else None
    training = manifest.get("training") or {}
    method = manifest.get("method") or {}
    train, evals, eval_metric = _curves(log or [], training.get("history") or [])
    return RunSummary(
        name=name, path=path, task=manifest.get("task", "?"), method=method.get("name", "?"),
        base_model=(manifest.get("base_model") or {}).get("name", "?"), created_at=manifest.get("created_at", ""),
        primary_metric=primary if primary in numbers else None, metrics=numbers, scored_on=scored_on,
        scored_data=words, scored_key=key, settings=_settings(manifest),
        training={"steps": training.get("steps"), "best step": training.get("best_step"),
                  "trainable parameters": method.get("trainable_parameters")},
        train_curve=train, eval_curve=evals, eval_metric=eval_metric)


@dataclass
class Row:
    """One row of a comparison: a name, a value per run, the runs with the best value, and
    whether the values are metrics (shown with 4 decimals)."""

    name: str
    values: list[Any]
    best: list[int] = field(default_factory=list)
    metric: bool = False

    def cells(self) -> list[str]:
        return [format_value(v, metric=self.metric) for v in self.values]


@dataclass
class Comparison:
    """What :func:`compare` finds: the runs, the settings that differ, the final metrics
    and training facts per run, and notes on what makes the numbers hard to compare."""

    runs: list[RunSummary]
    differences: list[Row]
    results: list[Row]
    notes: list[str]

    def as_dict(self) -> dict:
        return {"runs": [r.as_row() for r in self.runs],
                "differences": {row.name: row.values for row in self.differences},
                "results": {row.name: row.values for row in self.results}, "notes": self.notes}


def _same(values: list) -> bool:
    shown = [json.dumps(v, sort_keys=True, default=str) for v in values]
    return len(set(shown)) <= 1


def _best(name: str, values: list) -> list[int]:
    real = [(i, v) for i, v in enumerate(values) if isinstance(v, (int, float)) and v == v]
    if len(values) < 2 or len(real) < 2 or name == "n":
        return []
    top = real[0][1]
    for _, v in real[1:]:
        if metric_is_better(name, v, top):
            top = v
    return [i for i, v in real if v == top] if not all(v == top for _, v in real) else []


def compare(runs: list[RunSummary]) -> Comparison:
    """The settings that differ between ``runs`` (a setting one run lacks counts as
    differing), and their final metrics (the primary metric first), the best of each in
    ``Row.best`` (lower is better for losses and errors)."""
    keys = list(dict.fromkeys(k for r in runs for k in r.settings))
    differences = [Row(k, [r.settings.get(k) for r in runs]) for k in keys]
    differences = [row for row in differences if not _same(row.values)]
    primaries = [r.primary_metric for r in runs if r.primary_metric]
    names = list(dict.fromkeys(primaries + [k for r in runs for k in r.metrics if k != "n"]
                               + (["n"] if any("n" in r.metrics for r in runs) else [])))
    results = []
    for name in names:
        values = [r.metrics.get(name) for r in runs]
        results.append(Row(name, values, _best(name, values), metric=True))
    results += [Row(k, [r.training.get(k) for r in runs]) for k in ("steps", "best step", "trainable parameters")]
    notes = []
    scored = {r.scored_key for r in runs if r.scored_key}
    if len(scored) > 1:
        notes.append("The final metrics come from different data (" + "; ".join(
            f"{r.name}: {r.scored_data}" for r in runs if r.scored_data) + "): compare them with care.")
    missing = [r.name for r in runs if not r.metrics]
    if missing:
        notes.append(f"No final metrics in {', '.join(missing)} (trained without evaluation or validation data).")
    return Comparison(list(runs), differences, results, notes)


def format_value(value: Any, metric: bool = False) -> str:
    """A value as a table cell: a metric with 4 decimals (4 significant digits when tiny or
    huge), a setting as written (``0.003``, ``2e-05``), ``—`` for missing, lists and mappings
    as JSON."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and metric:
        return f"{value:.4f}" if value == 0 or 1e-3 <= abs(value) < 1e6 else f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)


def _curve_runs(comparison: Comparison) -> list:
    return [(r.name, r.train_curve, r.eval_curve, r.eval_metric) for r in comparison.runs]


def _has_curves(comparison: Comparison) -> bool:
    return any(r.train_curve or r.eval_curve for r in comparison.runs)


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    def cell(text: str) -> str:
        return " ".join(str(text).split()).replace("|", "\\|")

    return ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(cell(c) for c in row) + " |" for row in rows], ""]


def _cells(row: Row, bold: tuple[str, str]) -> list[str]:
    return [bold[0] + cell + bold[1] if i in row.best else cell for i, cell in enumerate(row.cells())]


def comparison_markdown(comparison: Comparison, image: str | None = None) -> str:
    """The comparison as Markdown; ``image`` is the learning curves' PNG file, relative to it."""
    names = [r.name for r in comparison.runs]
    lines = [f"# Comparison of {len(names)} runs", ""]
    lines += _md_table(["run", "folder", "task", "method", "base model", "created (UTC)", "final metrics on"],
                       [[r.name, r.path, r.task, r.method, r.base_model, r.date, r.scored_data or "—"]
                        for r in comparison.runs])
    lines += [f"> {note}" for note in comparison.notes] + ([""] if comparison.notes else [])
    lines += ["## Settings that differ", ""]
    lines += _md_table(["setting", *names], [[row.name, *_cells(row, ("", ""))] for row in comparison.differences]) \
        if comparison.differences else ["All settings are the same.", ""]
    lines += ["## Final metrics", "", "The best value of each metric is in bold.", ""]
    lines += _md_table(["metric", *names], [[row.name, *_cells(row, ("**", "**"))] for row in comparison.results])
    if image:
        lines += ["## Learning curves", "", f"![Learning curves]({image})", ""]
    return "\n".join(lines) + "\n"


_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:0 0 1.5em}
th,td{border:1px solid #ccc;padding:4px 10px;text-align:left}th{background:#f3f3f3}td.num{text-align:right}
.best{font-weight:bold;background:#e8f4e8}.note{background:#fff6e0;padding:6px 10px;border-left:4px solid #e0a000}
img{max-width:100%}"""


def _html_table(header: list[str], rows: list[Row]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        tds = [f"<th>{html.escape(row.name)}</th>"]
        for i, (value, cell) in enumerate(zip(row.values, row.cells())):
            classes = (["num"] if isinstance(value, (int, float)) and not isinstance(value, bool) else []) + \
                (["best"] if i in row.best else [])
            attr = f' class="{" ".join(classes)}"' if classes else ""
            tds.append(f"<td{attr}>{html.escape(cell)}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def comparison_html(comparison: Comparison, png: bytes | None = None) -> str:
    """The comparison as one self-contained HTML page; ``png`` (the learning curves) is inlined."""
    names = [r.name for r in comparison.runs]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Comparison of {len(names)} runs</title>"
             f"<style>{_STYLE}</style></head><body><h1>Comparison of {len(names)} runs</h1>",
             _html_table(["run", "folder", "task", "method", "base model", "created (UTC)", "final metrics on"],
                         [Row(r.name, [r.path, r.task, r.method, r.base_model, r.date, r.scored_data])
                          for r in comparison.runs])]
    parts += [f"<p class='note'>{html.escape(note)}</p>" for note in comparison.notes]
    parts.append("<h2>Settings that differ</h2>")
    parts.append(_html_table(["setting", *names], comparison.differences)
                 if comparison.differences else "<p>All settings are the same.</p>")
    parts += ["<h2>Final metrics</h2><p>The best value of each metric is highlighted.</p>",
              _html_table(["metric", *names], comparison.results)]
    if png:
        data = base64.b64encode(png).decode("ascii")
        parts.append(f"<h2>Learning curves</h2><img alt='Learning curves' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def curves_png(comparison: Comparison) -> bytes | None:
    """The runs' learning curves overlaid, as PNG bytes (None when no run has a curve)."""
    from .plots import learning_curves_png

    return learning_curves_png(_curve_runs(comparison)) if _has_curves(comparison) else None


def write_comparison(comparison: Comparison, path: str | Path) -> Path:
    """Write the comparison as HTML (``.html``/``.htm``: one file, the learning curves inline)
    or Markdown (``.md``: the curves as ``<name>_curves.png`` beside it).

    Raises:
        ConfigError: another file type.
    """
    from .plots import learning_curves_png, plot_learning_curves

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".html", ".htm", ".md"):
        raise ConfigError(f"--output {path}: write the comparison to a .html or a .md file.")
    path.parent.mkdir(parents=True, exist_ok=True)
    curves = _has_curves(comparison)
    if suffix == ".md":
        image = path.with_name(f"{path.stem}_curves.png")
        if curves:
            plot_learning_curves(image, _curve_runs(comparison))
        atomic_write_text(path, comparison_markdown(comparison, image.name if curves else None))
    else:
        atomic_write_text(path, comparison_html(comparison, learning_curves_png(_curve_runs(comparison))
                                                if curves else None))
    return path
