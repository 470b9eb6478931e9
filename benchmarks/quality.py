"""Model quality where the small English default falls short, each lever against the
default-model baseline measured in the same run.

Rows (each one its own process, cached in results/quality.json; ``--rerun`` measures again):

- ``waimai-default``: Chinese food-delivery reviews (waimai_10k), the default model
  fine-tuned on the training split as it is (most characters are [UNK] to it);
- ``waimai-pretrained``: the same, from a base made by ``domainfit pretrain --extend-vocab``
  on the training split's texts, labels ignored (the test texts are never seen); the base
  is built once per step count and reused;
- the same two with ``--train-rows 1000`` (1,000 labelled training rows, as in the report
  that found the problem; the base still comes from all the training texts, unlabelled, as
  a company would have many more reviews than labels), suffixed ``@1000``.

Every row records the [UNK] share of the training data, test accuracy and macro-F1, the
majority-class accuracy, and the wall-clock seconds of each stage.

Command: ``python benchmarks/quality.py [--rows waimai] [--train-rows N] [--pretrain-steps N] [--rerun]``
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import HERE, RESULTS_DIR, SHARED_DATA, machine, run_cached, upsert_results_row  # noqa: E402

WORK = HERE / "work" / "quality"
RESULTS = RESULTS_DIR / "quality.json"
SCRIPT = str(Path(__file__).resolve())
WAIMAI = SHARED_DATA / "waimai_10k"


def _subset(path: Path, rows: int | None, seed: int = 42) -> Path:
    """The first ``rows`` rows of a seeded shuffle, stratified by label (all rows for None)."""
    if rows is None:
        return path
    with open(path, newline="", encoding="utf-8") as fh:
        data = list(csv.DictReader(fh))
    by_label: dict[str, list[dict]] = {}
    for row in data:
        by_label.setdefault(row["label"], []).append(row)
    rng = random.Random(seed)
    chosen = []
    for label in sorted(by_label):
        group = by_label[label]
        rng.shuffle(group)
        chosen += group[:round(rows * len(group) / len(data))]
    rng.shuffle(chosen)
    out = WORK / f"{path.parent.name}-train-{rows}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["text", "label"])
        writer.writeheader()
        writer.writerows({"text": r["text"], "label": r["label"]} for r in chosen)
    return out


def worker(spec: dict) -> dict:
    import domainfit
    from domainfit.run.pretrain import pretrain

    train = _subset(WAIMAI / "train.csv", spec.get("train_rows"))
    test = WAIMAI / "test.csv"
    tag = spec["name"]
    seconds = {}
    model = "default"
    extra = {}
    if spec["lever"] == "pretrained":
        folder = WORK / f"waimai-base-{spec['pretrain_steps']}"
        if not (folder / "pretrain.json").is_file():
            pretrain(WAIMAI / "train.csv", folder, extend_vocab=True, steps=spec["pretrain_steps"], overwrite=True)
        record = json.loads((folder / "pretrain.json").read_text(encoding="utf-8"))
        seconds["pretrain"] = record["training"]["seconds_this_session"]
        model = str(folder)
        extra = {"pretrain": {k: record[k] for k in ("vocabulary", "validation")},
                 "pretrain_steps": record["training"]["steps"]}
        extra["pretrain"]["vocabulary"].pop("first_added", None)
    t0 = time.perf_counter()
    result = domainfit.train(data=str(train), eval_data=str(test), model=model, output=str(WORK / tag),
                             overwrite=True)
    seconds["train"] = round(time.perf_counter() - t0, 1)
    with open(test, newline="", encoding="utf-8") as fh:
        gold = [r["label"] for r in csv.DictReader(fh)]
    majority = Counter(gold).most_common(1)[0][1] / len(gold)
    m = result.eval_metrics
    return {"name": tag, "lever": spec["lever"], "train_rows": result.manifest["data"]["train"]["rows"],
            "unk_share_train": result.manifest["data"]["train"].get("unk_share"),
            "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "majority_accuracy": majority,
            "steps": result.manifest["training"]["steps"], "seconds": seconds, **extra, "machine": machine()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="waimai", help="which rows (waimai)")
    parser.add_argument("--train-rows", type=int, default=None, help="training rows (default: all)")
    parser.add_argument("--pretrain-steps", type=int, default=2000)
    parser.add_argument("--rerun", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker)), default=float), flush=True)
        return
    suffix = f"@{args.train_rows}" if args.train_rows else ""
    specs = [{"name": f"waimai-{lever}{suffix}", "lever": lever, "train_rows": args.train_rows,
              "pretrain_steps": args.pretrain_steps} for lever in ("default", "pretrained")]
    results = run_cached(specs, lambda s: s["name"], RESULTS, SCRIPT,
                         lambda r: f"accuracy {r['accuracy']:.4f} (majority {r['majority_accuracy']:.3f}), "
                                   f"[UNK] {r['unk_share_train']:.1%}", rerun=args.rerun)
    runs = results["runs"]
    base, lever = runs.get(f"waimai-default{suffix}"), runs.get(f"waimai-pretrained{suffix}")
    if base and lever:
        command = "python benchmarks/quality.py" + (f" --train-rows {args.train_rows}" if args.train_rows else "") \
            + (f" --pretrain-steps {args.pretrain_steps}" if args.pretrain_steps != 2000 else "")
        m = lever["machine"]
        cpu = f"{m.get('cpu_model', '?')} ({', '.join(m.get('instruction_sets') or [])}); {m.get('auto_precision')}"
        header = ("| Row | Baseline (default model) | With the lever | Lever | [UNK] before → after | Time (s) | "
                  "CPU; precision | Command |\n|---|---|---|---|---|---|---|---|")
        v = lever["pretrain"]["vocabulary"]
        row = (f"| waimai_10k{suffix} accuracy | {base['accuracy']:.4f} (macro-F1 {base['macro_f1']:.4f}; majority "
               f"{base['majority_accuracy']:.3f}) | {lever['accuracy']:.4f} (macro-F1 {lever['macro_f1']:.4f}) | "
               f"pretrain --extend-vocab ({v['added_tokens']:,} tokens, {lever['pretrain_steps']} steps) on the "
               f"training split's texts, unlabelled | {v['unk_share_before']:.1%} → {v['unk_share_after']:.1%} | "
               f"{base['seconds']['train']:.0f} vs {lever['seconds']['pretrain']:.0f} + {lever['seconds']['train']:.0f}"
               f" | {cpu} | `{command}` |")
        upsert_results_row("Quality levers (issue 18)", f"| waimai_10k{suffix} ", header, row)
        print(row)


if __name__ == "__main__":
    main()
