"""``domainfit gate``: may a candidate model replace the champion?

Both score the same frozen, labelled ("golden") data. The candidate passes when all hold:

1. its accuracy is at least the champion's plus ``min_delta``;
2. it is not worse by more than ``max_loss`` with 95% confidence: the lower end of the paired
   bootstrap interval of the accuracy difference is at least ``-max_loss`` (a golden set too
   small to tell is a refusal, with that reason);
3. no slice regresses (per true class by default, or per value of a slice column): a slice
   regresses when its accuracy drops by more than ``slice_tolerance`` and at least two more
   of its texts turn wrong than turn right;
4. its calibration (expected calibration error) is not worse by more than ``ece_tolerance``.

McNemar's exact test on the texts the two models disagree on is reported beside the
interval. Single-label classification models (any method, torch or ONNX).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import ConfigError, DomainfitError
from ..core.io import atomic_file

__all__ = ["GateResult", "gate", "resolve_model"]


@dataclass
class GateResult:
    passed: bool
    reasons: list[str]
    metric: str
    champion: dict
    candidate: dict
    delta: float
    ci: tuple[float, float]
    mcnemar_p: float
    discordant: dict
    slices: list[dict]
    settings: dict
    n: int
    regressed_slices: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_model(ref: str | Path) -> tuple[Path, str]:
    """A model folder, or ``REGISTRY/NAME`` → (its production version's folder, a description).

    Raises:
        ConfigError: neither a model folder nor a registry model with a production version.
    """
    from ..artifact import is_artifact
    from ..stores import Registry

    path = Path(ref)
    if is_artifact(path):
        return path, str(path)
    registry, name = path.parent, path.name
    if (registry / name / "registry.json").is_file():
        found = Registry(registry).production(name)
        if found is None:
            raise ConfigError(f"{name} in the registry {registry} has no production version to compare with.")
        version, folder = found
        return folder, f"{registry}/{name} version {version}"
    raise ConfigError(f"{ref} is neither a model folder (no domainfit.json) nor REGISTRY/NAME of a registry model.")


def _golden(path: str | Path, text_column: str, label_column: str, slice_column: str | None):
    from ..data import read_rows

    if not Path(path).is_file():
        raise ConfigError(f"golden data {path}: no such file")
    texts, labels, slices, lines = [], [], [], []
    missing = set()
    for line, row in read_rows(str(path)):
        for column in (text_column, label_column) + ((slice_column,) if slice_column else ()):
            if column not in row:
                missing.add(column)
        text, label = row.get(text_column), row.get(label_column)
        if not isinstance(text, str) or not text.strip() or label in (None, ""):
            continue
        texts.append(text)
        labels.append(str(label))
        slices.append(str(row.get(slice_column)) if slice_column else str(label))
        lines.append(line)
    if missing:
        raise ConfigError(f"golden data {path} has no column {', '.join(repr(c) for c in sorted(missing))} "
                          "(name the columns with --text-column, --label-column, --slice-column).")
    if not texts:
        raise ConfigError(f"golden data {path} has no labelled texts.")
    return texts, labels, slices, lines


def _check_pair(candidate, champion) -> None:
    if candidate.task.name != champion.task.name:
        raise ConfigError(f"the candidate is a {candidate.task.name} model and the champion a {champion.task.name} "
                          "model: a gate compares models of one task.")
    if not candidate.task.soft_targets:
        raise ConfigError(f"the gate compares single-label classification models; these are {candidate.task.name} "
                          "models.")
    extra, lacking = set(candidate.labels) - set(champion.labels), set(champion.labels) - set(candidate.labels)
    if extra or lacking:
        parts = ([f"only the candidate has {', '.join(sorted(extra))}"] if extra else []) + (
            [f"only the champion has {', '.join(sorted(lacking))}"] if lacking else [])
        raise ConfigError(f"the candidate and the champion have different labels ({'; '.join(parts)}): a gate "
                          "compares models with one label set.")


def _scores(predictor, texts: list[str], labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per text: right or wrong, and the confidence of the predicted label."""
    proba = predictor.predict_proba(texts)
    names = np.asarray(predictor.labels)
    predicted = names[proba.argmax(1)]
    return predicted == np.asarray(labels), proba.max(1)


def gate(candidate: str | Path, champion: str | Path, data: str | Path, *, text_column: str = "text",
         label_column: str = "label", slice_column: str | None = None, min_delta: float = 0.0,
         max_loss: float = 0.01, slice_tolerance: float = 0.05, ece_tolerance: float = 0.02,
         bootstrap: int = 2000, seed: int = 0) -> GateResult:
    """Score both models on ``data`` and decide (see the module docstring).

    Raises:
        ConfigError: models of different tasks or label sets, golden labels a model does not
            know, a golden file without labelled texts.
    """
    from scipy.stats import binomtest

    from ..evaluation.calibration import expected_calibration_error
    from ..inference import Predictor

    cand_path, cand_name = resolve_model(candidate)
    champ_path, champ_name = resolve_model(champion)
    cand, champ = Predictor(cand_path), Predictor(champ_path)
    _check_pair(cand, champ)
    texts, labels, slices, lines = _golden(data, text_column, label_column, slice_column)
    unknown = sorted(set(labels) - set(champ.labels))
    if unknown:
        where = ", ".join(str(lines[i]) for i, label in enumerate(labels) if label in unknown[:5])
        raise ConfigError(f"golden data {data} has labels the models do not know: {', '.join(unknown[:10])} "
                          f"(lines {where[:200]}).")
    right_c, conf_c = _scores(cand, texts, labels)
    right_h, conf_h = _scores(champ, texts, labels)
    n = len(texts)
    acc_c, acc_h = float(right_c.mean()), float(right_h.mean())
    delta = acc_c - acc_h
    rng = np.random.default_rng(seed)
    diff = right_c.astype(float) - right_h.astype(float)
    boots = diff[rng.integers(0, n, size=(bootstrap, n))].mean(1)
    ci = (float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975)))
    newly_wrong, newly_right = int((right_h & ~right_c).sum()), int((right_c & ~right_h).sum())
    mcnemar = float(binomtest(newly_right, newly_wrong + newly_right, 0.5).pvalue) if newly_wrong + newly_right else 1.0
    ece_c, ece_h = expected_calibration_error(conf_c, right_c), expected_calibration_error(conf_h, right_h)

    slice_rows, regressed = [], []
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(slices):
        groups.setdefault(s, []).append(i)
    for name, rows in sorted(groups.items()):
        idx = np.asarray(rows)
        a_c, a_h = float(right_c[idx].mean()), float(right_h[idx].mean())
        lost, won = int((right_h[idx] & ~right_c[idx]).sum()), int((right_c[idx] & ~right_h[idx]).sum())
        bad = a_c - a_h < -slice_tolerance and lost - won >= 2
        slice_rows.append({"slice": name, "n": len(rows), "champion": a_h, "candidate": a_c, "delta": a_c - a_h,
                           "newly_wrong": lost, "newly_right": won, "regressed": bad})
        if bad:
            regressed.append(name)

    reasons = []
    if delta < min_delta:
        reasons.append(f"accuracy {acc_c:.4f} is {'below' if delta < 0 else 'not above'} the champion's "
                       f"{acc_h:.4f}" + (f" + {min_delta:g}" if min_delta else "") + f" (difference {delta:+.4f})")
    if ci[0] < -max_loss:
        reasons.append(f"a loss of more than {max_loss:g} cannot be ruled out: the 95% interval of the difference "
                       f"reaches {ci[0]:+.4f} ({n} golden texts; more texts narrow it)")
    if regressed:
        shown = ", ".join(f"{r['slice']} {r['champion']:.2f}→{r['candidate']:.2f}" for r in slice_rows
                          if r["regressed"])
        reasons.append(f"{len(regressed)} slice(s) regress by more than {slice_tolerance:g}: {shown[:400]}")
    if ece_c > ece_h + ece_tolerance:
        reasons.append(f"calibration is worse: ECE {ece_c:.4f} against {ece_h:.4f} (tolerance {ece_tolerance:g})")
    passed = not reasons
    if passed:
        reasons.append(f"accuracy {acc_c:.4f} against {acc_h:.4f} ({delta:+.4f}, 95% interval {ci[0]:+.4f} to "
                       f"{ci[1]:+.4f}, McNemar p {mcnemar:.3g}); no slice regresses; ECE {ece_c:.4f} against "
                       f"{ece_h:.4f}")
    return GateResult(passed, reasons, "accuracy",
                      {"model": champ_name, "accuracy": acc_h, "ece": ece_h},
                      {"model": cand_name, "accuracy": acc_c, "ece": ece_c}, delta, ci, mcnemar,
                      {"newly_wrong": newly_wrong, "newly_right": newly_right}, slice_rows,
                      {"min_delta": min_delta, "max_loss": max_loss, "slice_tolerance": slice_tolerance,
                       "ece_tolerance": ece_tolerance, "bootstrap": bootstrap, "seed": seed,
                       "slices_by": slice_column or "true label", "data": str(data)},
                      n, regressed)


def write_gate_report(result: GateResult, folder: str | Path) -> Path:
    """``gate.md`` and ``gate.json`` in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    verdict = "**Passed**" if result.passed else "**Refused**"
    lines = [f"# Gate: {verdict}", "", *[f"- {r}" for r in result.reasons], "",
             f"Golden data: {result.settings['data']} ({result.n} texts); slices by {result.settings['slices_by']}.", "",
             "| | model | accuracy | ECE |", "|---|---|---|---|",
             f"| champion | {result.champion['model']} | {result.champion['accuracy']:.4f} | "
             f"{result.champion['ece']:.4f} |",
             f"| candidate | {result.candidate['model']} | {result.candidate['accuracy']:.4f} | "
             f"{result.candidate['ece']:.4f} |", "",
             f"Difference {result.delta:+.4f}, 95% paired bootstrap interval {result.ci[0]:+.4f} to "
             f"{result.ci[1]:+.4f}; McNemar p {result.mcnemar_p:.3g} ({result.discordant['newly_right']} texts turn "
             f"right, {result.discordant['newly_wrong']} turn wrong).", "",
             "| slice | n | champion | candidate | Δ | newly wrong | newly right | regressed |",
             "|---|---|---|---|---|---|---|---|"]
    ordered = sorted(result.slices, key=lambda r: r["delta"])
    lines += [f"| {r['slice']} | {r['n']} | {r['champion']:.3f} | {r['candidate']:.3f} | {r['delta']:+.3f} | "
              f"{r['newly_wrong']} | {r['newly_right']} | {'yes' if r['regressed'] else ''} |" for r in ordered]
    with atomic_file(folder / "gate.md") as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8")
    with atomic_file(folder / "gate.json") as tmp:
        Path(tmp).write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    return folder / "gate.md"


def promote_on_pass(result: GateResult, candidate: str | Path, target: str, by: str | None = None) -> int | None:
    """With a passed gate, add the candidate to the registry ``REGISTRY/NAME`` and promote it,
    recording who, when and why; returns the new version (None when refused).

    Raises:
        DomainfitError: ``target`` is not ``REGISTRY/NAME``.
    """
    from ..stores import Registry, check_name

    if not result.passed:
        return None
    path = Path(target)
    if not path.name or str(path.parent) in ("", "."):
        raise DomainfitError(f"--promote {target!r}: give REGISTRY/NAME, e.g. models/intents.")
    check_name(path.name)
    registry = Registry(path.parent)
    version = registry.add(path.name, resolve_model(candidate)[0])
    reason = f"gate passed on {result.settings['data']}: " + result.reasons[0]
    registry.promote(path.name, version, by=by, reason=reason)
    return version
