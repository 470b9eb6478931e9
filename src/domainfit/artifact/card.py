"""The model card: ``report/model_card.md``, written with every artifact from its manifest.

It follows the layout of Hugging Face model cards (YAML front matter with ``language``,
``license``, ``library_name``, ``base_model``, ``pipeline_tag``, ``tags`` and a
``model-index`` of the measured results, then Markdown sections), so that a folder can be
published as it is. Every statement comes from the manifest: what the model does, the data
it was trained and measured on (file, rows, sha256, unknown-token share), how it was
trained, its metrics with the data they were measured on, and its limits. Nothing in it is
invented: where the manifest does not know a fact (e.g. the base model's languages), the
card says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["model_card", "MODEL_CARD"]

MODEL_CARD = "report/model_card.md"
"""Where the card lies inside an artifact folder."""

_PIPELINE = {"classification": "text-classification", "multilabel": "text-classification",
             "regression": "text-classification", "pair": "text-classification",
             "token-classification": "token-classification", "retrieval": "sentence-similarity"}

_WHAT = {
    "classification": "assigns one of {n} labels to a text",
    "multilabel": "assigns any number of {n} labels to a text",
    "regression": "predicts a number for a text",
    "pair": "scores a pair of texts",
    "token-classification": "finds entities of {types} types in a text, with their character offsets",
    "retrieval": "embeds queries and documents so that a query finds its relevant documents",
}

_UNK_LIMIT = 0.02
_COUNTS = {"n", "n_unseen", "entities", "predicted_entities"}
_LABELS_SHOWN = 30


def model_card(manifest: dict, name: str = "model") -> str:
    """The Markdown model card of an artifact whose manifest is ``manifest``.

    Args:
        manifest: the checked manifest (``domainfit.json``).
        name: the model's name in the card (the artifact folder's name).

    Example:
        >>> card = model_card(read_manifest("my-model"), "my-model")  # doctest: +SKIP
        >>> card.splitlines()[0]
        '---'
    """
    task = manifest.get("task", "classification")
    base = manifest.get("base_model") or {}
    languages = base.get("language") or []
    front = {
        "language": languages or None,
        "license": base.get("license"),
        "library_name": "domainfit",
        "base_model": base.get("name") if _hub_id(base.get("name")) else None,
        "pipeline_tag": _PIPELINE.get(task),
        "tags": ["domainfit", task, (manifest.get("method") or {}).get("name", "unknown")],
        "model-index": [{"name": name, "results": _results(manifest, task)}] if manifest.get("metrics") else None,
    }
    front = {k: v for k, v in front.items() if v}
    lines = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(), "---", "",
             f"# Model card: {name}", ""]
    lines += [_summary(manifest, task, name), ""]
    lines += _intended_use(manifest, task, languages)
    lines += _training_data(manifest)
    lines += _procedure(manifest)
    lines += _evaluation(manifest)
    lines += _limits(manifest, languages)
    lines += _how_to_use(name, task)
    lines += _licence(base)
    return "\n".join(lines).rstrip() + "\n"


def _hub_id(value: Any) -> bool:
    return isinstance(value, str) and value.count("/") == 1 and not value.startswith((".", "/", "~"))


def _results(manifest: dict, task: str) -> list[dict]:
    data = manifest.get("data") or {}
    out = []
    for split, metrics in (manifest.get("metrics") or {}).items():
        source = (data.get(split) or {}).get("source")
        dataset = Path(source).name if source else split
        values = [{"type": k, "value": round(float(v), 4), "name": k} for k, v in metrics.items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in _COUNTS]
        out.append({"task": {"type": _PIPELINE.get(task, task)},
                    "dataset": {"name": f"{dataset} ({split})", "type": "local"}, "metrics": values})
    return out


def _summary(manifest: dict, task: str, name: str) -> str:
    method = manifest.get("method") or {}
    base = (manifest.get("base_model") or {}).get("name", "an unnamed base model")
    backend = manifest.get("backend", "torch")
    how = f"adapted with `{method.get('name', '?')}`"
    if method.get("name") == "zeroshot":
        how = f"built zero-shot (backend `{method.get('backend', 'embedding')}`)"
    exported = ""
    if backend == "onnx":
        export = manifest.get("export") or {}
        exported = f" This folder is its ONNX export ({export.get('quantize', 'fp32')})."
    return (f"`{name}` is a **{task}** model made by domainfit {manifest.get('domainfit_version', '')} from "
            f"`{base}`, {how}, on {manifest.get('created_at', 'an unrecorded date')}.{exported}")


def _intended_use(manifest: dict, task: str, languages: list[str]) -> list[str]:
    labels = [str(x) for x in manifest.get("labels") or []]
    types = sorted({lab[2:] for lab in labels if lab[:2] in ("B-", "I-")})
    what = _WHAT.get(task, "makes predictions on text").format(n=len(labels), types=len(types))
    train = ((manifest.get("data") or {}).get("train") or {})
    lines = ["## Intended use", "", f"The model {what}."]
    shown = types if task == "token-classification" else labels
    if shown:
        more = f", and {len(shown) - _LABELS_SHOWN} more" if len(shown) > _LABELS_SHOWN else ""
        kind = "Entity types" if task == "token-classification" else "Labels"
        lines += ["", f"{kind}: " + ", ".join(f"`{x}`" for x in shown[:_LABELS_SHOWN]) + more + "."]
    if train.get("source"):
        lines += ["", f"It is meant for texts like its training data (`{Path(train['source']).name}`): "
                      "the same kind of writer, topic and language."]
    lang = ", ".join(languages) if languages else "not stated by the base model's own card"
    lines += ["", f"Languages the base model was trained for: {lang}.", "",
              "Out of scope: texts of another language, script or domain than the training data (the "
              "model still answers, often with confidence), and decisions about people without a human "
              "review of the model's answer.", ""]
    return lines


def _training_data(manifest: dict) -> list[str]:
    data = manifest.get("data") or {}
    rows = []
    for split, d in data.items():
        if not isinstance(d, dict):
            continue
        unk = d.get("unk_share")
        rows.append((split, f"`{Path(str(d.get('source', '—'))).name}`", d.get("rows", "—"), d.get("skipped", 0),
                     (d.get("sha256") or "—")[:16], f"{unk:.2%}" if isinstance(unk, (int, float)) else "—"))
    lines = ["## Data", ""]
    if not rows:
        return lines + ["Not recorded.", ""]
    lines += _table(["Data", "File", "Rows", "Skipped", "sha256 (first 16)", "[UNK] share"], rows)
    split = manifest.get("split") or {}
    if split.get("validation_from"):
        lines += [f"Validation data: {split['validation_from']}, {split.get('validation_rows', '?')} rows.", ""]
    return lines


def _procedure(manifest: dict) -> list[str]:
    method = manifest.get("method") or {}
    training = manifest.get("training") or {}
    config = (manifest.get("config") or {}).get("training") or {}
    model = manifest.get("model") or {}
    rows = [("method", method.get("name")),
            ("trainable parameters", _share(method)),
            ("learning rate", method.get("learning_rate") or config.get("learning_rate")),
            ("epochs (set)", config.get("epochs")),
            ("optimizer steps", training.get("steps")),
            ("best step", training.get("best_step")),
            ("stopped early", training.get("stopped_early")),
            ("precision", training.get("precision")),
            ("max length (tokens)", model.get("max_length")),
            ("seed", config.get("seed")),
            ("n-gram companion", _companion(manifest.get("companion")))]
    rows = [(k, v) for k, v in rows if v is not None]
    return ["## Training procedure", ""] + (_table(["Setting", "Value"], rows) if rows else ["Not recorded.", ""])


def _companion(section: dict | None) -> str | None:
    if not section:
        return None
    val = section.get("validation") or {}
    return (f"blended, encoder weight {section['weight']:.2f} (validation accuracy: encoder "
            f"{val.get('encoder_accuracy', float('nan')):.4f}, blend {val.get('blend_accuracy', float('nan')):.4f})")


def _share(method: dict) -> str | None:
    trainable, total = method.get("trainable_parameters"), method.get("total_parameters")
    if not trainable or not total:
        return None
    return f"{trainable:,} of {total:,} ({trainable / total:.1%})"


def _evaluation(manifest: dict) -> list[str]:
    metrics = manifest.get("metrics") or {}
    data = manifest.get("data") or {}
    lines = ["## Evaluation", ""]
    if not metrics:
        return lines + ["No labelled data was scored when this model was made; run `domainfit evaluate`.", ""]
    for split, values in metrics.items():
        source = (data.get(split) or {}).get("source")
        where = f"`{Path(source).name}`" if source else "data split from the training file"
        primary = values.get("primary_metric")
        rows = [(f"**{k}**" if k == primary else k, _fmt(v)) for k, v in values.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in _COUNTS]
        rows.sort(key=lambda r: not r[0].startswith("**"))
        lines += [f"On the {split} data ({where}, {values.get('n', '?')} examples):", ""]
        lines += _table(["Metric", "Value"], rows)
    lines += ["Later evaluations are in `evaluations/` and listed by `domainfit info`.", ""]
    return lines


def _limits(manifest: dict, languages: list[str]) -> list[str]:
    lines = ["## Limits", ""]
    model = manifest.get("model") or {}
    if model.get("max_length"):
        lines.append(f"- Texts are read up to {model['max_length']} tokens; the rest of a longer text is not seen"
                     + (" (sentences are cut into windows instead)." if model.get("kind") == "token" else "."))
    warnings = [str(w) for w in manifest.get("warnings") or []]
    for split, d in (manifest.get("data") or {}).items():
        unk = d.get("unk_share") if isinstance(d, dict) else None
        said = any("[UNK]" in w and str(d.get("source")) in w for w in warnings)  # the warning names the pieces
        if isinstance(unk, (int, float)) and unk > _UNK_LIMIT and not said:
            lines.append(f"- {unk:.1%} of the {split} data's tokens are unknown to the tokenizer ([UNK]): the model "
                         "cannot read them. A base model whose vocabulary covers this text would do better.")
    if not languages:
        lines.append("- The base model's card does not say which languages it reads; measure on your own data.")
    for warning in warnings:
        lines.append(f"- Noted while training: {warning}")
    export = manifest.get("export") or {}
    parity = export.get("parity") or {}
    if parity:
        lines.append(f"- ONNX export ({export.get('quantize')}): agrees with the original model on "
                     f"{parity.get('agreement', 0):.2%} of {parity.get('texts')} texts.")
    lines.append("- Metrics hold for data like the evaluation data; a shift in topic, wording or label mix "
                 "changes them. Measure again on recent data before relying on them.")
    return lines + [""]


def _how_to_use(name: str, task: str) -> list[str]:
    example = {"token-classification": "Anna moved to Oslo in May",
               "retrieval": "how do I reset my password"}.get(task, "where is my new card?")
    if task == "retrieval":
        cli = f'domainfit search {name} "{example}"'
    else:
        cli = f'domainfit predict {name} "{example}"'
    return ["## How to use", "", "```", cli, f"domainfit serve {name}", "```", "", "```python", "import domainfit",
            "", f'model = domainfit.load("{name}")', f'print(model.predict(["{example}"]))', "```", ""]


def _licence(base: dict) -> list[str]:
    licence = base.get("license")
    stated = f"`{licence}`, as its own card states" if licence else "not stated by its own card"
    return ["## Licence", "",
            f"The base model's licence: {stated}. This model is derived from it, so that licence applies, "
            "together with the terms of the training data.", ""]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _table(header: list[str], rows: list[tuple]) -> list[str]:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows] + [""]
