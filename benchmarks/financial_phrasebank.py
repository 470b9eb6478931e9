"""Financial PhraseBank: domainfit with defaults, scored on the whole test set and on its
all-agree rows (published FinBERT: 0.86 accuracy / 0.84 macro-F1 on all data).

    python benchmarks/financial_phrasebank.py [--model FOLDER] [--set key=value ...]

The split is the one shipped in ../shared/data/financial_phrasebank (80/20, stratified,
seed 42). Results: benchmarks/results/financial_phrasebank.json and RESULTS.md.
"""

from __future__ import annotations

import csv
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SHARED_DATA, machine, peak_rss_mb, upsert_results_row, write_results  # noqa: E402

DATA = SHARED_DATA / "financial_phrasebank"
COMMAND = "python benchmarks/financial_phrasebank.py"


def _scores(gold, pred):
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(gold, pred)), "macro_f1": float(f1_score(gold, pred, average="macro")),
            "n": len(gold)}


def main() -> None:
    import argparse

    import domainfit

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default", help="base model (default: the packaged MiniLM)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="training override, repeatable")
    args = ap.parse_args()
    label = "domainfit defaults" if args.model == "default" and not args.overrides else \
        f"domainfit {Path(args.model).name if args.model != 'default' else ''} {' '.join(args.overrides)}".strip()
    command = COMMAND + (f" --model {args.model}" if args.model != "default" else "") + \
        "".join(f" --set {o}" for o in args.overrides)

    with open(DATA / "test.csv", newline="", encoding="utf-8") as fh:
        test = list(csv.DictReader(fh))
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        # The training file holds a few identical sentences with different labels (annotators
        # disagreed); domainfit refuses them by default, so they are skipped and counted.
        result = domainfit.train(output=str(Path(out) / "m"), model=args.model, overrides=args.overrides,
                                 **{"data.train": str(DATA / "train.csv"), "data.on_bad_rows": "skip"})
        seconds = time.perf_counter() - t0
        preds = [p["label"] for p in domainfit.load(result.path).predict([r["text"] for r in test])]
    gold = [r["label"] for r in test]
    agree = [i for i, r in enumerate(test) if r["agreement"] == "100"]
    payload = {
        "all": _scores(gold, preds),
        "all_agree": _scores([gold[i] for i in agree], [preds[i] for i in agree]),
        "skipped_training_rows": result.manifest["data"]["train"]["skipped"],
        "train_seconds": seconds, "steps": result.state.global_step, "peak_rss_mb": peak_rss_mb(),
        "precision": result.manifest["training"]["precision"],
        "published": {"FinBERT (Araci 2019), all data": {"accuracy": 0.86, "macro_f1": 0.84}},
        "machine": machine(), "command": command, "model": args.model, "overrides": args.overrides,
    }
    write_results("financial_phrasebank" + ("" if label == "domainfit defaults" else "_variant"), payload)
    header = ("| system | accuracy (all) | macro-F1 (all) | accuracy (all-agree) | macro-F1 (all-agree) | train s | "
              "command |\n|---|---|---|---|---|---|---|")
    a, b = payload["all"], payload["all_agree"]
    upsert_results_row("Financial PhraseBank (test 970; all-agree rows 446)", f"| {label} (", header,
                       f"| {label} ({payload['precision']}) | {a['accuracy']:.4f} | {a['macro_f1']:.4f} | "
                       f"{b['accuracy']:.4f} | {b['macro_f1']:.4f} | {seconds:.0f} | `{command}` |")
    upsert_results_row("Financial PhraseBank (test 970; all-agree rows 446)", "| FinBERT", header,
                       "| FinBERT (published, Araci 2019) | 0.86 | 0.84 | – | – | – | – |")
    print(payload["all"], payload["all_agree"])


if __name__ == "__main__":
    main()
