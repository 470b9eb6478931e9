"""Drift detection on real data: false alarms and detections over seeded resamples.

    python benchmarks/drift.py [--model DIR] [--seeds 20] [--current-size 500]

The model is a Banking77 classifier (default: the one benchmarks/quality.py trains,
benchmarks/work/quality/banking77-default; trained here with default settings if missing).
Every text is scored and embedded once; each seed then draws, without overlap:

* reference: 1,000 texts of one random half of Banking77's test set;
* current, no drift: ``--current-size`` texts of the other half;
* current, train as reference: the reference drawn from Banking77's *training* texts
  instead (texts the model was fit on), current from the test half — the mistake of passing
  the training file, measured;
* current, drift: Financial PhraseBank's test texts, and mixes of Banking77 with a share of
  PhraseBank (2, 5, 10, 20, 50%).

``domainfit.improve.compare`` decides each (family-wise α 0.05, the defaults of
``domainfit drift``). Reports the share of seeds with drift found per scenario and per
check, and the smallest PhraseBank share found in at least 90% of the seeds. Results:
results/drift.json and RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _common import HERE, SHARED_DATA, machine, read_csv, replace_section, write_results  # noqa: E402

COMMAND = "python benchmarks/drift.py"
SHARES = (0.02, 0.05, 0.1, 0.2, 0.5)


def _model(path: Path) -> Path:
    if (path / "domainfit.json").is_file():
        return path
    subprocess.run([sys.executable, "-m", "domainfit.cli", "train", "--data", str(SHARED_DATA / "banking77" / "train.csv"),
                    "--output", str(path)], check=True)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(HERE / "work" / "quality" / "banking77-default"))
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--reference-size", type=int, default=1000)
    ap.add_argument("--current-size", type=int, default=500)
    args = ap.parse_args()

    from domainfit.improve import compare, scored_set
    from domainfit.inference import Predictor

    model = _model(Path(args.model))
    predictor = Predictor(model)
    test, _ = read_csv(SHARED_DATA / "banking77" / "test.csv")
    train, _ = read_csv(SHARED_DATA / "banking77" / "train.csv")
    phrasebank, _ = read_csv(SHARED_DATA / "financial_phrasebank" / "test.csv")
    rng0 = np.random.default_rng(1234)
    train = [train[i] for i in rng0.choice(len(train), 3000, replace=False)]
    t0 = time.perf_counter()
    pools = {name: scored_set(predictor, texts, name, name) for name, texts in
             (("banking77 test", test), ("banking77 train", train), ("phrasebank test", phrasebank))}
    scoring_s = time.perf_counter() - t0
    b77, b77_train, fin = pools["banking77 test"], pools["banking77 train"], pools["phrasebank test"]

    scenarios: dict[str, list] = {}
    timings = []
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(b77))
        half_a, half_b = order[: len(b77) // 2], order[len(b77) // 2:]
        ref = b77.take(half_a[: args.reference_size])
        n = args.current_size
        cases = {"Banking77 vs Banking77 (no drift)": b77.take(half_b[:n]),
                 "PhraseBank (drift)": fin.take(rng.choice(len(fin), n, replace=False))}
        for share in SHARES:
            k = int(round(share * n))
            part_b77, part_fin = b77.take(half_b[: n - k]), fin.take(rng.choice(len(fin), k, replace=False))
            cases[f"Banking77 + {share:.0%} PhraseBank"] = _concat(part_b77, part_fin)
        for name, current in cases.items():
            t = time.perf_counter()
            result = compare(ref, current, seed=seed)
            timings.append(time.perf_counter() - t)
            scenarios.setdefault(name, []).append(result)
        train_ref = b77_train.take(rng.choice(len(b77_train), args.reference_size, replace=False))
        scenarios.setdefault("train as reference vs Banking77 test (no drift)", []).append(
            compare(train_ref, b77.take(half_b[:n]), seed=seed))

    summary = {}
    for name, results in scenarios.items():
        checks = [s.name for s in results[0].signals]
        summary[name] = {"drift_rate": float(np.mean([r.drift for r in results])),
                         "per_check": {c: float(np.mean([next(s for s in r.signals if s.name == c).drift
                                                         for r in results])) for c in checks},
                         "median_p": {c: float(np.median([next(s for s in r.signals if s.name == c).p_value
                                                          for r in results])) for c in checks}}
    smallest = next((share for share in SHARES
                     if summary[f"Banking77 + {share:.0%} PhraseBank"]["drift_rate"] >= 0.9), None)
    m = machine()
    payload = {"command": COMMAND, "model": str(model), "seeds": args.seeds, "reference_size": args.reference_size,
               "current_size": args.current_size, "scenarios": summary, "smallest_share_found_90pct": smallest,
               "scoring_s": scoring_s, "compare_median_s": float(np.median(timings)), "machine": m}
    write_results("drift", payload)
    checks = list(next(iter(summary.values()))["per_check"])
    rows = "\n".join(f"| {name} | {s['drift_rate']:.0%} | " + " | ".join(f"{s['per_check'][c]:.0%}" for c in checks)
                     + " |" for name, s in summary.items())
    body = (f"## Drift detection (issue 19)\n\nCommand: `{COMMAND}`. Model: Banking77 classifier "
            f"(`{Path(model).name}`). Per seed ({args.seeds} seeds): reference {args.reference_size} texts of one half "
            f"of Banking77's test set, current {args.current_size} texts of the other half, of Financial PhraseBank's "
            f"test set, or mixed; family-wise α 0.05 (the `domainfit drift` defaults). Cells: share of seeds with "
            f"drift found, overall and per check. Smallest PhraseBank share found in ≥ 90% of seeds: "
            f"**{'none' if smallest is None else f'{smallest:.0%}'}**. One comparison takes "
            f"{np.median(timings):.2f} s after scoring (scoring {len(test) + len(train) + len(phrasebank)} texts: "
            f"{scoring_s:.0f} s). CPU: {m.get('cpu_model', '?')}.\n\n"
            f"| current set | drift found | " + " | ".join(checks) + " |\n|---|---|" + "---|" * len(checks) + "\n"
            + rows + "\n")
    replace_section(body.splitlines()[0], body)
    print(body)


def _concat(a, b):
    from domainfit.improve import TextSet

    return TextSet("current", "mix", a.labels + b.labels, np.concatenate([a.scores, b.scores]), a.texts + b.texts,
                   np.concatenate([a.embeddings, b.embeddings]))


if __name__ == "__main__":
    main()
