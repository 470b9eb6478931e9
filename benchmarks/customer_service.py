"""The customer-service app on real data, in one run.

    python benchmarks/customer_service.py [--held-out 10] [--seed 0] [--clients 16] [--seconds 30]

1. Intents: the bundle of recipes/customer_service_banking.yaml (Banking77 train, 77
   intents; StackFAQ for the FAQ part) on the Banking77 test set: the intent model alone
   (always answering) and the assistant with its calibrated out-of-scope fallback.
2. Out-of-scope: ``--held-out`` intents (seeded) are removed from training; a bundle is
   trained on the other 67 and tested on all 77 test intents (the held-out ones must be
   recognised as out of scope). For every detector (max-softmax, energy, Mahalanobis,
   kNN): AUROC, and in-scope accuracy / out-of-scope recall / precision at thresholds
   chosen on the validation split (never on test): the recipe's rule (answered precision
   ≥ 0.95) and "at most 1 point of in-scope accuracy lost". The test trade-off curves go
   to results/customer_service_oos.png.
3. FAQ retrieval: the bundle's retriever on StackFAQ (every paraphrased query against the
   719 FAQ pairs; a pair is relevant when it is from the query's thread): Recall@1, MRR@10.
4. Chat: ``domainfit app customer-service serve`` on loopback, ``--clients`` asyncio clients
   for ``--seconds`` sending Banking77 test messages to POST /v1/chat: messages/s,
   p50/p99, errors, routes.

Bundles are cached in benchmarks/work/. Results: results/customer_service.json, RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _common import (HERE, RESULTS_DIR, SHARED_DATA, cli_server, machine, peak_rss_mb, read_csv, replace_section,  # noqa: E402
                     write_results)

WORK = HERE / "work"
RECIPE = HERE.parent / "recipes" / "customer_service_banking.yaml"
# the recipe runs on its shipped stand-in data unless DOMAINFIT_DATA names the real sets
os.environ.setdefault("DOMAINFIT_DATA", str(SHARED_DATA.resolve()))
COMMAND = "python benchmarks/customer_service.py"


def _bundle(name: str, recipe) -> Path:
    from domainfit.apps.customer_service import train_bundle

    out = WORK / name
    if not (out / "bundle.json").is_file():
        t0 = time.perf_counter()
        train_bundle(recipe, out, overwrite=True)
        (out / "build_seconds.txt").write_text(f"{time.perf_counter() - t0:.1f}\n")
    return out


def _write_csv(path: Path, rows: list[dict], fields: list[str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fields)
        w.writeheader()
        w.writerows(rows)
    return path


def _intents_part() -> dict:
    from domainfit.apps.customer_service import evaluate_bundle, load_recipe

    bundle = _bundle("cs-banking", load_recipe(RECIPE))
    metrics = evaluate_bundle(bundle, SHARED_DATA / "banking77" / "test.csv")
    metrics["build_seconds"] = float((bundle / "build_seconds.txt").read_text()) \
        if (bundle / "build_seconds.txt").exists() else None
    return {"bundle": str(bundle), **metrics}


def held_out_bundle(held_out: int, seed: int) -> dict:
    """The bundle trained without ``held_out`` Banking77 intents (seeded), built once and
    cached: ``bundle`` path, ``train_csv``, the ``unseen`` intents, and the split settings
    (``validation_share``, ``seed``) that reproduce the bundle's own validation split."""
    from domainfit.apps.customer_service import load_recipe

    texts, labels = read_csv(SHARED_DATA / "banking77" / "train.csv")
    intents = sorted(set(labels))
    unseen = sorted(random.Random(seed).sample(intents, held_out))
    tmp = WORK / f"oos-data-{held_out}-{seed}"
    tmp.mkdir(parents=True, exist_ok=True)
    train_csv = _write_csv(tmp / "train.csv", [{"text": t, "label": y} for t, y in zip(texts, labels)
                                               if y not in unseen], ["text", "label"])
    base = load_recipe(RECIPE)
    with open(base.answers, encoding="utf-8") as f:
        answers = [r for r in csv.DictReader(f) if r["intent"] not in unseen]
    answers_csv = _write_csv(tmp / "answers.csv", answers, ["intent", "answer", "slots"])
    recipe = load_recipe(intents={**base.intents.model_dump(), "data": str(train_csv)}, answers=str(answers_csv),
                         out_of_scope=base.out_of_scope.model_dump(), seed=base.seed)
    return {"bundle": _bundle(f"cs-banking-oos-{held_out}-{seed}", recipe), "train_csv": train_csv,
            "unseen": unseen, "validation_share": recipe.intents.validation_share, "seed": recipe.seed}


def _oos_part(held_out: int, seed: int) -> dict:
    from domainfit.data import ColumnSpec, load_dataset, train_val_split
    from domainfit.inference import load
    from domainfit.ood import METHODS, OutOfScopeDetector, auroc, calibrate, tradeoff

    held = held_out_bundle(held_out, seed)
    bundle, train_csv, unseen = held["bundle"], held["train_csv"], held["unseen"]
    model = load(bundle / "intent")
    index = {n: i for i, n in enumerate(model.labels)}
    # The bundle's own split, reproduced: thresholds are chosen on validation, never on test.
    ds = load_dataset(train_csv, task="classification", columns=ColumnSpec("text", "label"))
    train_ex, val_ex = train_val_split(ds.examples, held["validation_share"], held["seed"])
    f_train, _ = model.features([e.text for e in train_ex])
    f_val, l_val = model.features([e.text for e in val_ex])
    val_correct = l_val.argmax(1) == np.array([index[e.label] for e in val_ex])
    test_texts, test_labels = read_csv(SHARED_DATA / "banking77" / "test.csv")
    f_test, l_test = model.features(test_texts)
    in_scope = np.array([y not in unseen for y in test_labels])
    gold = np.array([index.get(y, -1) for y in test_labels])
    test_correct = (l_test.argmax(1) == gold) & in_scope
    no_fallback = float(test_correct.sum() / in_scope.sum())
    y_train = np.array([index[e.label] for e in train_ex])
    methods, curves = {}, {}
    for method in METHODS:
        det = OutOfScopeDetector.fit(method, f_train, y_train, len(model.labels))
        s_val, s_test = det.score(f_val, l_val), det.score(f_test, l_test)
        entry = {"auroc": auroc(s_test, in_scope)}
        for rule, kwargs in (("precision_0.95", {"target_precision": 0.95}),
                             ("accuracy_loss_0.01", {"max_accuracy_loss": 0.01})):
            cal = calibrate(s_val, val_correct, **kwargs)
            answer = s_test <= cal.threshold
            entry[rule] = {"threshold": cal.threshold,
                           "in_scope_accuracy": float((answer & test_correct).sum() / in_scope.sum()),
                           "oos_recall": float((~answer & ~in_scope).sum() / (~in_scope).sum()),
                           "oos_precision": float((~answer & ~in_scope).sum() / max((~answer).sum(), 1))}
        curve = tradeoff(s_test, test_correct, in_scope, points=201)
        ok = [p for p in curve if p["in_scope_accuracy"] >= no_fallback - 0.01]
        entry["test_oracle_recall_at_1pt"] = max((p["oos_recall"] for p in ok), default=0.0)
        methods[method], curves[method] = entry, curve
    _plot(curves, no_fallback, RESULTS_DIR / "customer_service_oos.png", held_out)
    return {"held_out_intents": unseen, "train_intents": len(model.labels), "test_rows": len(test_texts),
            "test_oos_rows": int((~in_scope).sum()), "no_fallback_in_scope_accuracy": no_fallback,
            "methods": methods, "bundle": str(bundle)}


def _plot(curves: dict, no_fallback: float, path: Path, held_out: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for name, curve in curves.items():
        ax.plot([p["oos_recall"] for p in curve], [p["in_scope_accuracy"] for p in curve], label=name)
    ax.axhline(no_fallback - 0.01, color="grey", ls="--", lw=1, label="no-fallback accuracy − 1 pt")
    ax.set_xlabel(f"out-of-scope recall ({held_out} unseen Banking77 intents)")
    ax.set_ylabel("in-scope accuracy (unanswered = wrong)")
    ax.set_ylim(max(0.0, no_fallback - 0.3), 1.0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _faq_part(bundle: Path) -> dict:
    from domainfit.inference import load

    faq = list(csv.DictReader(open(SHARED_DATA / "stackfaq" / "faq.csv", encoding="utf-8")))
    thread_of = {f"faq-{r['answer_id']}": r["thread_id"] for r in faq}
    queries = list(csv.DictReader(open(SHARED_DATA / "stackfaq" / "queries.csv", encoding="utf-8")))
    retriever = load(bundle / "retrieval")
    t0 = time.perf_counter()
    hits = retriever.search([q["query"] for q in queries], k=10)
    seconds = time.perf_counter() - t0
    r1, rr = [], []
    for q, row in zip(queries, hits):
        ranks = [n for n, h in enumerate(row, 1) if thread_of[h["id"]] == q["thread_id"]]
        r1.append(1.0 if ranks and ranks[0] == 1 else 0.0)
        rr.append(1.0 / ranks[0] if ranks else 0.0)
    return {"queries": len(queries), "documents": len(faq), "recall@1": float(np.mean(r1)),
            "mrr@10": float(np.mean(rr)), "queries_per_s": len(queries) / seconds}


async def _chat_load(base: str, texts: list[str], clients: int, seconds: float) -> dict:
    import httpx

    out = {"requests": 0, "errors": 0, "latency": [], "routes": {}}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        started = time.perf_counter()
        stop = started + seconds

        async def client(rng: random.Random):
            session = None
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                try:
                    r = await http.post(f"{base}/v1/chat", json={"message": rng.choice(texts), "session_id": session})
                    ok = r.status_code == 200
                    if ok:
                        body = r.json()
                        session = body["session_id"]
                        out["routes"][body["route"]] = out["routes"].get(body["route"], 0) + 1
                except httpx.HTTPError:
                    ok = False
                out["latency"].append(time.perf_counter() - t0)
                out["requests"] += 1
                out["errors"] += 0 if ok else 1

        rng = random.Random(0)
        await asyncio.gather(*(client(random.Random(rng.random())) for _ in range(clients)))
        out["seconds"] = time.perf_counter() - started
    return out


def _chat_part(bundle: Path, clients: int, seconds: float) -> dict:
    texts, _ = read_csv(SHARED_DATA / "banking77" / "test.csv")
    with tempfile.TemporaryDirectory() as tmp:
        with cli_server(["app", "customer-service", "serve", str(bundle), "--db",
                         f"sqlite:///{Path(tmp) / 'c.db'}"]) as base:
            out = asyncio.run(_chat_load(base, texts, clients, seconds))
    latency = sorted(out.pop("latency"))
    return {"clients": clients, "seconds": out["seconds"], "requests": out["requests"], "errors": out["errors"],
            "messages_per_s": out["requests"] / out["seconds"], "p50_ms": 1000 * statistics.median(latency),
            "p99_ms": 1000 * latency[int(0.99 * (len(latency) - 1))], "routes": out["routes"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--held-out", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=30)
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    intents = _intents_part()
    print("intents:", json.dumps(intents), flush=True)
    oos = _oos_part(args.held_out, args.seed)
    print("oos:", json.dumps(oos["methods"], indent=1), flush=True)
    faq = _faq_part(Path(intents["bundle"]))
    print("faq:", json.dumps(faq), flush=True)
    chat = _chat_part(Path(intents["bundle"]), args.clients, args.seconds)
    print("chat:", json.dumps(chat), flush=True)
    command = COMMAND + (f" --held-out {args.held_out}" if args.held_out != 10 else "") + \
        (f" --seed {args.seed}" if args.seed else "")
    write_results("customer_service", {"command": command, "intents": intents, "out_of_scope": oos, "faq": faq,
                                       "chat": chat, "peak_rss_mb": peak_rss_mb(), "load_before": load_before,
                                       "load_after": os.getloadavg()[0], "machine": machine()})
    m = oos["methods"]
    lines = ["## Customer service: Banking77 intents, unseen-intent detection, StackFAQ, chat (2 CPU cores)", "",
             f"Command: `{command}`. Bundle of `recipes/customer_service_banking.yaml` (all-MiniLM-L6-v2, full "
             "fine-tuning, 3 epochs).", "",
             f"Intents (Banking77 test, 3,080 messages): intent model alone {intents['no_fallback_accuracy']:.4f}; "
             f"with the calibrated fallback ({intents['method']}, answered precision ≥ 0.95 on validation) in-scope "
             f"accuracy {intents['in_scope_accuracy']:.4f}, answered precision {intents['answered_precision']:.4f}, "
             f"routes {intents['routes']}.", "",
             f"Out-of-scope: {args.held_out} intents held out of training (seed {args.seed}: "
             f"{', '.join(oos['held_out_intents'])}); {oos['train_intents']} trained; test on all "
             f"{oos['test_rows']} messages ({oos['test_oos_rows']} unseen-intent messages). Intent model alone: "
             f"in-scope accuracy {oos['no_fallback_in_scope_accuracy']:.4f}. Thresholds are chosen on the "
             "validation split (in-scope only); 'oracle' is the best recall on the test curve within 1 point.", "",
             "| detector | AUROC | rule | threshold | in-scope acc | OOS recall | OOS precision |",
             "|---|---|---|---|---|---|---|"]
    for method, e in m.items():
        for rule in ("precision_0.95", "accuracy_loss_0.01"):
            r = e[rule]
            lines.append(f"| {method} | {e['auroc']:.4f} | {rule.replace('_', ' ')} | {r['threshold']:.4g} | "
                         f"{r['in_scope_accuracy']:.4f} | {r['oos_recall']:.4f} | {r['oos_precision']:.4f} |")
        lines.append(f"| {method} | | oracle within 1 pt (test) | | | {e['test_oracle_recall_at_1pt']:.4f} | |")
    lines += ["", "Trade-off curves: `benchmarks/results/customer_service_oos.png`.", "",
              f"FAQ retrieval (StackFAQ, {faq['queries']} queries, {faq['documents']} FAQ pairs, the bundle's "
              f"zero-shot retriever): Recall@1 {faq['recall@1']:.4f}, MRR@10 {faq['mrr@10']:.4f}, "
              f"{faq['queries_per_s']:.0f} queries/s.", "",
              f"Chat (POST /v1/chat, {chat['clients']} clients for {chat['seconds']:.0f} s on the same 2 cores, "
              f"conversation log in SQLite): {chat['messages_per_s']:.1f} messages/s, p50 {chat['p50_ms']:.0f} ms, "
              f"p99 {chat['p99_ms']:.0f} ms, {chat['errors']} errors, routes {chat['routes']}."]
    replace_section(lines[0], "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
