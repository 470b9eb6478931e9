"""Distillation: the small default model learns a larger teacher's probabilities.

    python benchmarks/distill.py [--dataset phrasebank|banking77] [--train-rows N]
        [--teacher-model DIR] [--weights 0.5] [--temperatures 1]

The data set's train split (or ``--train-rows`` of it, stratified and seeded: the rest of
its texts then become ``--unlabelled-data``, as a company has more texts than labels), the
validation share split from it, the test split scored. The teacher is all-mpnet-base-v2
(109.5 M parameters, see MODELS.md; ``--teacher-model`` names its unpacked folder)
fine-tuned by ``domainfit train`` on the same labelled rows and cached in benchmarks/work/;
the students are the default all-MiniLM-L6-v2 (22.7 M), trained without a teacher (the
baseline) and with ``--teacher`` at each weight and temperature. Prediction uses the
student alone: no bigger model at prediction time. Results: results/distill.json (one entry
per data set) and RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import HERE, RESULTS_DIR, SHARED_DATA, machine, replace_section, write_results  # noqa: E402

WORK = HERE / "work" / "distill"
DATASETS = {"phrasebank": ("financial_phrasebank", "Financial PhraseBank"), "banking77": ("banking77", "Banking77")}
COMMAND = "python benchmarks/distill.py"


def _labelled_and_rest(folder: Path, rows: int | None, seed: int = 42) -> tuple[Path, Path | None]:
    """``rows`` labelled rows (stratified, seeded) and a file of the other rows' texts."""
    if rows is None:
        return folder / "train.csv", None
    from quality import _subset

    labelled = _subset(folder / "train.csv", rows, seed)
    with open(labelled, newline="", encoding="utf-8") as fh:
        taken = {r["text"] for r in csv.DictReader(fh)}
    with open(folder / "train.csv", newline="", encoding="utf-8") as fh:
        rest = [r["text"] for r in csv.DictReader(fh) if r["text"] not in taken]
    out = WORK / f"{folder.name}-unlabelled-{rows}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text"])
        writer.writerows([t] for t in rest)
    return labelled, out


def _train(output: Path, train: Path, test: Path, **settings) -> dict:
    import domainfit

    if not (output / "domainfit.json").is_file():
        domainfit.train(data=str(train), eval_data=str(test), output=str(output),
                        overwrite=True, **{"data.on_bad_rows": "skip", "method.name": "full", **settings})
    manifest = domainfit.load(output).manifest
    return {"accuracy": manifest["metrics"]["eval"]["accuracy"], "macro_f1": manifest["metrics"]["eval"]["macro_f1"],
            "validation_accuracy": manifest["training"]["best_val_accuracy"],
            "seconds": manifest["training"]["seconds_this_session"], "steps": manifest["training"]["steps"],
            "precision": manifest["training"]["precision"], "distillation": manifest.get("distillation")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="phrasebank", choices=sorted(DATASETS))
    ap.add_argument("--train-rows", type=int, default=None, help="labelled rows (the rest: unlabelled texts)")
    ap.add_argument("--teacher-model", default=str(HERE / "work" / "models" / "all-mpnet-base-v2"))
    ap.add_argument("--teacher", default=None, help="an already trained teacher artifact (skips training one)")
    ap.add_argument("--weights", default="0.5", help="teacher weights, comma-separated")
    ap.add_argument("--temperatures", default="1", help="teacher temperatures, comma-separated")
    args = ap.parse_args()
    folder = SHARED_DATA / DATASETS[args.dataset][0]
    train, unlabelled = _labelled_and_rest(folder, args.train_rows)
    test = folder / "test.csv"
    tag = f"{args.dataset}{f'@{args.train_rows}' if args.train_rows else ''}"
    work = WORK / tag
    teacher_dir = Path(args.teacher) if args.teacher else work / "teacher-mpnet"
    teacher = _train(teacher_dir, train, test, model=args.teacher_model, **{"training.ensemble": "none"})
    runs = {"teacher (all-mpnet-base-v2)": teacher,
            "student alone (all-MiniLM-L6-v2)": _train(work / "student-alone", train, test,
                                                       **{"training.ensemble": "none"})}
    extra = {"data.unlabelled": str(unlabelled)} if unlabelled else {}
    for w in [float(x) for x in args.weights.split(",")]:
        for t in [float(x) for x in args.temperatures.split(",")]:
            runs[f"student + teacher, weight {w:g}, temperature {t:g}"
                 f"{' + unlabelled texts' if unlabelled else ''}"] = _train(
                work / f"student-teacher-{w:g}-{t:g}", train, test, **{
                    "training.ensemble": "none", "training.teacher": str(teacher_dir), "training.teacher_weight": w,
                    "training.teacher_temperature": t, **extra})
    path = RESULTS_DIR / "distill.json"
    results = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    results[tag] = {"runs": runs, "machine": machine(),
                    "command": f"{COMMAND} --dataset {args.dataset}"
                               + (f" --train-rows {args.train_rows}" if args.train_rows else "")
                               + f" --weights {args.weights} --temperatures {args.temperatures}"}
    write_results("distill", results)
    rows = []
    for name, entry in results.items():
        m = entry["machine"]
        cpu = f"{m.get('cpu_model', '?')} ({', '.join(m.get('instruction_sets') or [])})"
        rows += [f"| {name} | {model} | {r['accuracy']:.4f} | {r['macro_f1']:.3f} | {r['validation_accuracy']:.4f} | "
                 f"{r['seconds']:.0f} | {cpu}; {r['precision']} | `{entry['command'].strip()}` |"
                 for model, r in entry["runs"].items()]
    body = ("## Distillation (issue 18)\n\n"
            "Test accuracy of each model trained with `--method full` on the labelled rows (`@N`: N labelled "
            "rows, the other training texts given as `--unlabelled-data`); the students predict alone. "
            "Seconds: training, as the model's manifest records it (not counting the teacher scoring the texts first).\n\n"
            "| data | model | accuracy | macro-F1 | validation accuracy | seconds | CPU; precision | command |\n"
            "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    replace_section(body.splitlines()[0], body)
    print(body)


if __name__ == "__main__":
    main()
