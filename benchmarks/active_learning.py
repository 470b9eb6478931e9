"""Active learning on Banking77, by simulation: which texts should be labelled first?

    python benchmarks/active_learning.py [--seeds 3] [--finetune-seeds 3] [--dev]

Every seed starts from 2 labelled examples per class (154 texts) of Banking77's training set
(the pool: 10,003 texts whose labels stay hidden until picked) and adds 200 picks per round
up to 3,000 labels; a round is cut short where it would step over a label count that a
target names (1,500 = half of 3,000, and 2,700), so that accuracy is measured there. Between
rounds the fast mode of ``domainfit audit`` retrains: the
encoder's frozen text vectors (all-MiniLM-L6-v2, computed once) and a logistic-regression
head. Strategies: random, margin, entropy, diverse (core-set), hybrid
(cluster-margin; ``domainfit.improve.select.choose``). Test accuracy on Banking77's 3,080
test texts after each round: mean ± std over the seeds (table and PNG).

``--dev`` is how the strategies' settings were chosen without looking at the test set: 2,000
training texts (seeded) are held out as the evaluation set, the pool is the rest, and the
curves are printed only (no fine-tuning, nothing written).

Then the question users care about: how good is a *fine-tuned* model on the labels picked?
``domainfit train`` (default settings) on the first ≥ 2,700 labels of the best strategy and
of random, per seed (``--finetune-seeds``), against the full-data model's 93.4%.
Results: results/active_learning.json, results/active_learning.png and RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _common import RESULTS_DIR, SHARED_DATA, machine, read_csv, replace_section, write_results  # noqa: E402

COMMAND = "python benchmarks/active_learning.py"
STRATEGIES = ("random", "margin", "entropy", "diverse", "hybrid")
FULL_DATA = 0.934  # the full-data model of benchmarks/banking77.py (RESULTS.md)


def _head(vectors, y):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=10.0, max_iter=2000).fit(vectors, y)


def _proba(clf, vectors, k):
    p = np.zeros((len(vectors), k))
    p[:, clf.classes_] = clf.predict_proba(vectors)
    return p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--round", type=int, default=200)
    ap.add_argument("--max-labels", type=int, default=3000)
    ap.add_argument("--finetune-seeds", type=int, default=3)
    ap.add_argument("--finetune-at", type=int, default=2700)
    ap.add_argument("--dev", action="store_true", help="evaluate on 2,000 held-out training texts; print only")
    args = ap.parse_args()

    from domainfit.improve.audit import encode
    from domainfit.improve.select import choose

    pool_texts, pool_labels = read_csv(SHARED_DATA / "banking77" / "train.csv")
    test_texts, test_labels = read_csv(SHARED_DATA / "banking77" / "test.csv")
    if args.dev:
        order = np.random.default_rng(123).permutation(len(pool_texts))
        test_texts, test_labels = [pool_texts[i] for i in order[:2000]], [pool_labels[i] for i in order[:2000]]
        pool_texts, pool_labels = [pool_texts[i] for i in order[2000:]], [pool_labels[i] for i in order[2000:]]
    checkpoints = sorted({args.max_labels // 2, args.finetune_at, args.max_labels})
    classes = sorted(set(pool_labels))
    index = {c: i for i, c in enumerate(classes)}
    y_pool = np.array([index[c] for c in pool_labels])
    y_test = np.array([index[c] for c in test_labels])
    t0 = time.perf_counter()
    pool_vectors, test_vectors = encode(pool_texts), encode(test_texts)
    encode_s = time.perf_counter() - t0

    curves: dict[str, list[list[tuple[int, float]]]] = {s: [] for s in STRATEGIES}
    picks_at: dict[str, list[list[int]]] = {s: [] for s in STRATEGIES}
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        start = np.concatenate([rng.choice(np.flatnonzero(y_pool == c), 2, replace=False) for c in range(len(classes))])
        for strategy in STRATEGIES:
            labelled = list(start)
            curve = []
            chosen_at = None
            while True:
                clf = _head(pool_vectors[labelled], y_pool[labelled])
                acc = float((_proba(clf, test_vectors, len(classes)).argmax(1) == y_test).mean())
                curve.append((len(labelled), acc))
                if chosen_at is None and len(labelled) >= args.finetune_at:
                    chosen_at = list(labelled)
                if len(labelled) >= args.max_labels:
                    break
                rest = np.setdiff1d(np.arange(len(pool_texts)), labelled)
                stop = next(c for c in checkpoints if c > len(labelled))
                budget = min(args.round, stop - len(labelled))
                if strategy == "random":
                    new = list(rng.choice(rest, budget, replace=False))
                else:
                    probs = _proba(clf, pool_vectors, len(classes))
                    new = choose(probs, pool_vectors, budget, strategy, eligible=rest,
                                 labelled_vectors=pool_vectors[labelled], seed=seed)
                assert not set(new) & set(labelled)
                labelled += [int(i) for i in new]
            curves[strategy].append(curve)
            picks_at[strategy].append(chosen_at or labelled)
            print(f"seed {seed} {strategy}: " + " ".join(f"{n}:{a:.3f}" for n, a in curve[::3]), flush=True)

    sizes = [n for n, _ in curves["random"][0]]
    table = {s: {"mean": [float(np.mean([c[i][1] for c in curves[s]])) for i in range(len(sizes))],
                 "std": [float(np.std([c[i][1] for c in curves[s]])) for i in range(len(sizes))]}
             for s in STRATEGIES}
    random_final = table["random"]["mean"][-1]
    reach = {}
    for s in STRATEGIES:
        hit = next((n for n, m in zip(sizes, table[s]["mean"]) if m >= random_final), None)
        reach[s] = hit
    best = min((s for s in STRATEGIES if s != "random"), key=lambda s: (reach[s] or 10**9, -table[s]["mean"][-1]))
    if args.dev:
        print("dev split (2,000 held-out training texts): labels to reach random's", f"{random_final:.3f}:", reach)
        return

    finetuned: dict[str, list[dict]] = {}
    import domainfit

    for strategy in ("random", best):
        finetuned[strategy] = []
        for seed in range(min(args.finetune_seeds, args.seeds)):
            rows = [{"text": pool_texts[i], "label": pool_labels[i]} for i in picks_at[strategy][seed]]
            with tempfile.TemporaryDirectory() as tmp:
                t = time.perf_counter()
                result = domainfit.train(data=rows, eval_data=str(SHARED_DATA / "banking77" / "test.csv"),
                                         output=str(Path(tmp) / "m"), **{"training.seed": seed})
                finetuned[strategy].append({"labels": len(rows), "accuracy": result.eval_metrics["accuracy"],
                                            "seconds": time.perf_counter() - t})
            print(f"fine-tuned {strategy} seed {seed}: {finetuned[strategy][-1]}", flush=True)

    _plot(sizes, table, RESULTS_DIR / "active_learning.png")
    m = machine()
    summary = {s: {"labels": [r["labels"] for r in rs], "accuracy_mean": float(np.mean([r["accuracy"] for r in rs])),
                   "accuracy_std": float(np.std([r["accuracy"] for r in rs]))} for s, rs in finetuned.items()}
    write_results("active_learning", {"command": COMMAND, "seeds": args.seeds, "sizes": sizes, "curves": table,
                                      "random_at_max": random_final, "labels_to_reach_random_at_max": reach,
                                      "best_strategy": best, "finetuned": finetuned, "finetuned_summary": summary,
                                      "full_data_accuracy": FULL_DATA, "encode_s": encode_s, "machine": m})
    body = _section(args.round, args.seeds, args.finetune_at, sizes, table, reach, best, summary, m,
                    sorted({args.max_labels // 2, args.finetune_at}))
    replace_section(body.splitlines()[0], body)
    print(body)


def _section(round_size, seeds, finetune_at, sizes, table, reach, best, summary, m, checkpoints) -> str:
    """The RESULTS.md section: every other label count, and always the ones the targets name."""
    random_final = table["random"]["mean"][-1]
    shown = [i for i, n in enumerate(sizes) if i % 2 == 0 or i == len(sizes) - 1 or n in checkpoints]
    header = "| labels | " + " | ".join(STRATEGIES) + " |\n|---|" + "---|" * len(STRATEGIES)
    rows = "\n".join(f"| {sizes[i]:,} | " + " | ".join(f"{table[s]['mean'][i]:.3f} ± {table[s]['std'][i]:.3f}"
                                                      for s in STRATEGIES) + " |" for i in shown)
    ft = "\n".join(f"| {s} | {', '.join(map(str, v['labels']))} | {v['accuracy_mean']:.4f} ± {v['accuracy_std']:.4f} | "
                   f"{(FULL_DATA - v['accuracy_mean']) * 100:+.2f} |" for s, v in summary.items())
    cpu = f"{m.get('cpu_model', '?')} ({', '.join(m.get('instruction_sets', []))}; fine-tuning in {m.get('auto_precision', '?')})"
    return (f"## Active learning (issue 19)\n\nCommand: `{COMMAND}`. Banking77: pool = the 10,003 training texts, "
            f"start 2 per class, {round_size} picks per round (cut short to land on "
            f"{' and '.join(f'{c:,}' for c in checkpoints)}), a logistic-regression head on frozen all-MiniLM-L6-v2 "
            f"vectors retrained between rounds; test accuracy (3,080 texts), mean ± std over {seeds} seeds. "
            f"Random reaches {random_final:.3f} at {sizes[-1]:,} labels; labels each strategy needs to reach that: "
            + ", ".join(f"{s} {reach[s] if reach[s] else 'never'}" for s in STRATEGIES)
            + f". Best: **{best}** (ties broken by the final accuracy, then by order). CPU: {cpu}. "
            "Plot: `results/active_learning.png`.\n\n" + header + "\n" + rows + "\n\n"
            f"Fine-tuned (`domainfit train`, default settings) on the first {finetune_at:,} labels picked, one run "
            f"per seed, against the full-data model's {FULL_DATA:.3f} (10,003 labels):\n\n"
            "| picked by | labels | test accuracy | points below full data |\n|---|---|---|---|\n" + ft + "\n")


def _plot(sizes, table, path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    for s, v in table.items():
        mean, std = np.array(v["mean"]), np.array(v["std"])
        ax.plot(sizes, mean, label=s, marker="o", markersize=3)
        ax.fill_between(sizes, mean - std, mean + std, alpha=0.15)
    ax.set_xlabel("labelled texts")
    ax.set_ylabel("test accuracy (frozen vectors + head)")
    ax.set_title("Active learning on Banking77")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.savefig(path, format="png")


if __name__ == "__main__":
    main()
