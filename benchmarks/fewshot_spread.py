"""How steady is `fewshot` on three-class sentiment? Financial PhraseBank 8-shot, many samples,
scored on training rows set aside (the test split is never used), with the settings given.

    python benchmarks/fewshot_spread.py [--seeds 3,4,5,6,7,8] [--configs default,lr5e-5,lr2e-5]

1,000 rows of PhraseBank's training file (after its conflicting duplicates are skipped) are
set aside with a fixed seed; for each seed, domainfit's own sampler draws 8 rows per class
from the rest, ``domainfit.train(method="fewshot", training.seed=seed)`` trains on them, and
accuracy is measured on the 1,000 rows. For the defaults it also reports what correcting the
predictions for the class shares would give: with the training file's true shares, and with
shares estimated by EM on the unlabelled rows (Saerens et al., 2002; no label used).

Results: benchmarks/results/fewshot_spread.json (docs/methods.md quotes them).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _common import SHARED_DATA, machine, write_results  # noqa: E402

CONFIGS = {"default": {}, "lr5e-5": {"training.learning_rate": 5e-5}, "lr2e-5": {"training.learning_rate": 2e-5}}


def _split(seed: int = 123, held_out: int = 1000):
    from domainfit.data import load_dataset

    ds = load_dataset(SHARED_DATA / "financial_phrasebank" / "train.csv", task="classification", on_bad_rows="skip")
    rows = list(ds.examples)
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    return [rows[i] for i in order[:held_out]], [rows[i] for i in order[held_out:]]


def _em_shares(P: np.ndarray, train_shares: np.ndarray, rounds: int = 100) -> np.ndarray:
    """Class shares of unlabelled rows by EM on the predicted probabilities (Saerens et al.)."""
    q = train_shares.copy()
    for _ in range(rounds):
        Q = P * (q / train_shares)
        Q /= Q.sum(1, keepdims=True)
        q = Q.mean(0)
    return q


def run(config: str, seed: int, held, pool) -> dict:
    import domainfit
    from domainfit.data import sample_few_shot

    shots = sample_few_shot(pool, 8, seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "label"])
            writer.writerows([e.text, e.label] for e in shots)
        result = domainfit.train(data=str(path), output=str(Path(tmp) / "model"),
                                 **{"method.name": "fewshot", "training.seed": seed, **CONFIGS[config]})
        answers = domainfit.load(result.path).predict([e.text for e in held], top_k=3)
    labels = sorted({e.label for e in pool})
    P = np.array([[{a["label"]: a["score"] for a in ans["top_k"]}[name] for name in labels] for ans in answers])
    gold = np.array([e.label for e in held])

    def accuracy(scores: np.ndarray) -> float:
        return float((np.array(labels)[scores.argmax(1)] == gold).mean())

    uniform = np.full(len(labels), 1 / len(labels))
    true = np.array([Counter(e.label for e in pool)[name] for name in labels], dtype=float)
    true /= true.sum()
    em = _em_shares(P, uniform)
    predicted = Counter(np.array(labels)[P.argmax(1)].tolist())
    return {"config": config, "seed": seed, "accuracy": accuracy(P), "predicted": dict(predicted),
            "true_shares_accuracy": accuracy(P * (true / uniform)), "em_accuracy": accuracy(P * (em / uniform)),
            "em_shares": dict(zip(labels, em.round(3).tolist()))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="3,4,5,6,7,8")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    args = ap.parse_args()
    held, pool = _split()
    runs = []
    for config in args.configs.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            runs.append(run(config, seed, held, pool))
            r = runs[-1]
            print(f"{config} seed {seed}: {r['accuracy']:.3f} (true shares {r['true_shares_accuracy']:.3f}, "
                  f"EM {r['em_accuracy']:.3f}) predicted {r['predicted']}", flush=True)
    summary = {}
    for config in args.configs.split(","):
        values = [r["accuracy"] for r in runs if r["config"] == config]
        summary[config] = {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                           "min": min(values), "max": max(values)}
        print(f"{config}: {summary[config]['mean']:.3f} ± {summary[config]['std']:.3f}")
    write_results("fewshot_spread", {"runs": runs, "summary": summary, "held_out_rows": len(held),
                                     "machine": machine(), "command": "python benchmarks/fewshot_spread.py"})


if __name__ == "__main__":
    main()
