"""The label audit on Banking77 with planted noise: does it find the wrong labels, and does
cleaning them pay?

    python benchmarks/label_audit.py [--noise 0.1] [--seed 0] [--no-train]

10% of Banking77's training labels are moved to another random class (seeded). ``domainfit
audit`` (fast mode, 5 folds, its defaults) flags rows; precision and recall are measured
against the planted flips, beside cleanlab's ``find_label_issues`` (the peer, from its own
library in the bench extra) on the same out-of-fold probabilities. Then four models are
trained with default settings and scored on the 3,080 test texts: on the clean labels, on
the noisy ones, on the noisy set with the flagged rows removed, and with them relabelled to
the audit's suggestion. Results: results/label_audit.json and RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _common import SHARED_DATA, machine, read_csv, replace_section, write_results  # noqa: E402

COMMAND = "python benchmarks/label_audit.py"


def _pr(flagged: set[int], flips: set[int]) -> dict:
    hit = len(flagged & flips)
    return {"flagged": len(flagged), "precision": hit / len(flagged) if flagged else 0.0,
            "recall": hit / len(flips) if flips else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-train", action="store_true", help="measure the audit only")
    args = ap.parse_args()

    import domainfit
    from domainfit.improve.audit import audit, confident_learning

    texts, labels = read_csv(SHARED_DATA / "banking77" / "train.csv")
    classes = sorted(set(labels))
    rng = np.random.default_rng(args.seed)
    flips = set(int(i) for i in rng.choice(len(texts), int(round(args.noise * len(texts))), replace=False))
    noisy = list(labels)
    for i in flips:
        noisy[i] = str(rng.choice([c for c in classes if c != labels[i]]))
    work = Path(tempfile.mkdtemp(prefix="label-audit-"))
    noisy_file = work / "noisy.csv"
    with open(noisy_file, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("text", "label"), *zip(texts, noisy)])

    t0 = time.perf_counter()
    result = audit(noisy_file, work / "audit", seed=args.seed)
    audit_s = time.perf_counter() - t0
    ours = _pr(set(result.flagged), flips)
    ours["suggestion_right"] = float(np.mean([s == labels[i] for i, s in zip(result.flagged, result.suggested)
                                              if i in flips])) if flips & set(result.flagged) else 0.0
    print("domainfit audit:", ours, f"{audit_s:.0f} s", flush=True)

    # The same out-of-fold probabilities for the peer.
    probs = result.probabilities
    index = {c: i for i, c in enumerate(result.classes)}
    given = np.array([index[c] for c in noisy])
    mask, _ = confident_learning(given, probs)
    assert set(np.flatnonzero(mask)) == set(result.flagged)
    peer = None
    try:
        from cleanlab.filter import find_label_issues

        peer = _pr(set(int(i) for i in np.flatnonzero(find_label_issues(given, probs))), flips)
        print("cleanlab:", peer, flush=True)
    except ImportError:
        print("cleanlab is not installed (pip install -e .[bench]): no peer row", flush=True)

    accuracy = {}
    if not args.no_train:
        flagged = set(result.flagged)
        suggestion = dict(zip(result.flagged, result.suggested))
        sets = {"clean labels": list(zip(texts, labels)), "noisy labels (10% flipped)": list(zip(texts, noisy)),
                "noisy, flagged rows removed": [(t, y) for i, (t, y) in enumerate(zip(texts, noisy)) if i not in flagged],
                "noisy, flagged rows relabelled": [(t, suggestion.get(i, y)) for i, (t, y) in enumerate(zip(texts, noisy))]}
        for name, rows in sets.items():
            t = time.perf_counter()
            trained = domainfit.train(data=[{"text": a, "label": b} for a, b in rows],
                                      eval_data=str(SHARED_DATA / "banking77" / "test.csv"),
                                      output=str(work / name.replace(" ", "-").replace(",", "").replace("%", "")),
                                      **{"training.seed": args.seed})
            accuracy[name] = {"rows": len(rows), "accuracy": trained.eval_metrics["accuracy"],
                              "seconds": time.perf_counter() - t}
            print(name, accuracy[name], flush=True)
    recovered = None
    if accuracy:
        clean, dirty = accuracy["clean labels"]["accuracy"], accuracy["noisy labels (10% flipped)"]["accuracy"]
        best = max(accuracy["noisy, flagged rows removed"]["accuracy"],
                   accuracy["noisy, flagged rows relabelled"]["accuracy"])
        recovered = (best - dirty) / (clean - dirty) if clean > dirty else None
    m = machine()
    write_results("label_audit", {"command": COMMAND, "noise": args.noise, "seed": args.seed, "rows": len(texts),
                                  "flips": len(flips), "domainfit": ours, "cleanlab": peer,
                                  "out_of_fold_accuracy": result.out_of_fold_accuracy, "audit_s": audit_s,
                                  "near_duplicate_pairs": len(result.duplicates), "training": accuracy,
                                  "share_of_noise_cost_recovered": recovered, "machine": m})
    rows = [f"| domainfit audit (fast, 5 folds) | {ours['flagged']} | {ours['precision']:.3f} | {ours['recall']:.3f} |"]
    if peer:
        rows.append(f"| cleanlab find_label_issues (same probabilities) | {peer['flagged']} | {peer['precision']:.3f} | "
                    f"{peer['recall']:.3f} |")
    train_rows = "\n".join(f"| {name} | {v['rows']} | {v['accuracy']:.4f} |" for name, v in accuracy.items())
    body = (f"## Label audit (issue 19)\n\nCommand: `{COMMAND}`. Banking77 training set ({len(texts)} rows), "
            f"{len(flips)} labels ({args.noise:.0%}) moved to another random class (seed {args.seed}). Out-of-fold "
            f"accuracy of the fast mode {result.out_of_fold_accuracy:.3f}; the audit took {audit_s:.0f} s. "
            f"{ours['suggestion_right']:.1%} of the flagged flips get their true label as the suggestion. "
            f"CPU: {m.get('cpu_model', '?')}.\n\n"
            "| flagging | rows flagged | precision | recall |\n|---|---|---|---|\n" + "\n".join(rows) + "\n")
    if accuracy:
        body += ("\nTrained with default settings, test accuracy (3,080 texts)"
                 + (f"; cleaning recovers **{recovered:.0%}** of the accuracy the noise cost" if recovered is not None
                    else "") + ":\n\n| training labels | rows | test accuracy |\n|---|---|---|\n" + train_rows + "\n")
    replace_section(body.splitlines()[0], body)
    print(body)


if __name__ == "__main__":
    main()
