"""FAQ retrieval on StackFAQ: BM25, the untuned encoder, domainfit's fine-tuned bi-encoder,
and the bi-encoder with domainfit's cross-encoder reranking, in one run.

    python benchmarks/faq_retrieval.py [--test-share 0.2] [--seed 0] [--candidates 10]

The 125 threads are split by thread (seeded): the test threads' paraphrased queries are
never seen in training. The corpus is every FAQ pair (question + answer, 719 documents,
all threads); a document is relevant to a query when it belongs to the query's thread.
Training pairs: each training query (and each training thread's own question) with its
thread's first answer. The reranker is a ``pair`` model trained on the same training
queries: the positive document (label 1) and the three best-ranked wrong documents of the
fine-tuned bi-encoder (label 0). Every system is scored by the same function
(``recall@k`` = share of queries with a relevant document in the top k; MRR@10).
Queries/s counts embedding the queries, searching, and reranking (not building the index).
Results: benchmarks/results/faq_retrieval.json and a table in RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SHARED_DATA, machine, peak_rss_mb, replace_section, write_results  # noqa: E402

DATA = SHARED_DATA / "stackfaq"
COMMAND = "python benchmarks/faq_retrieval.py"
MAX_LENGTH = 256  # a third of the documents are longer than 128 tokens


def _read(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _split(test_share: float, seed: int):
    faq, queries = _read(DATA / "faq.csv"), _read(DATA / "queries.csv")
    threads = sorted({r["thread_id"] for r in faq})
    random.Random(seed).shuffle(threads)
    test_threads = set(threads[:round(test_share * len(threads))])
    docs = [{"id": r["answer_id"], "text": f"{r['question']} {r['answer']}", "thread": r["thread_id"]} for r in faq]
    by_thread: dict[str, list[str]] = {}
    for d in docs:
        by_thread.setdefault(d["thread"], []).append(d["id"])
    first = {r["thread_id"]: f"{r['question']} {r['answer']}" for r in faq if r["answer_rank"] == "1"}
    train = [{"query": q["query"], "positive": first[q["thread_id"]]} for q in queries
             if q["thread_id"] not in test_threads]
    train += [{"query": r["question"], "positive": first[r["thread_id"]]} for r in faq
              if r["answer_rank"] == "1" and r["thread_id"] not in test_threads]
    test = [{"query": q["query"], "relevant": "|".join(by_thread[q["thread_id"]]), "thread": q["thread_id"]}
            for q in queries if q["thread_id"] in test_threads]
    return docs, train, test, by_thread, test_threads


def _scores(rankings: list[list[str]], test: list[dict]) -> dict:
    from domainfit.tasks.retrieval import ranking_metrics

    return ranking_metrics(rankings, [set(t["relevant"].split("|")) for t in test])


def _bm25(docs, test) -> dict:
    from rank_bm25 import BM25Okapi

    def words(text: str) -> list[str]:
        return re.findall(r"\w+", text.lower())

    t0 = time.perf_counter()
    bm25 = BM25Okapi([words(d["text"]) for d in docs])
    build = time.perf_counter() - t0
    t1 = time.perf_counter()
    rankings = []
    for t in test:
        scores = bm25.get_scores(words(t["query"]))
        top = sorted(range(len(docs)), key=lambda i: -scores[i])[:10]
        rankings.append([docs[i]["id"] for i in top])
    seconds = time.perf_counter() - t1
    return {**_scores(rankings, test), "queries_per_s": len(test) / seconds, "train_s": 0.0, "index_s": build}


def _untuned(docs, test) -> dict:
    import numpy as np
    from transformers import AutoTokenizer

    from domainfit.modeling import EmbeddingModel, build_encoder, embed_texts, resolve_model

    path = str(resolve_model("default").path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = EmbeddingModel(build_encoder(path)).eval()
    t0 = time.perf_counter()
    vectors = embed_texts(model, tokenizer, [d["text"] for d in docs], MAX_LENGTH)
    index_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    queries = embed_texts(model, tokenizer, [t["query"] for t in test], MAX_LENGTH)
    top = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    seconds = time.perf_counter() - t1
    rankings = [[docs[i]["id"] for i in row] for row in top]
    return {**_scores(rankings, test), "queries_per_s": len(test) / seconds, "train_s": 0.0, "index_s": index_s}


def _write_csv(path: Path, rows: list[dict], fields: list[str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _domainfit(docs, train, test, tmp: Path, candidates: int, overrides: list[str]) -> dict:
    import domainfit

    settings = {"training.max_length": MAX_LENGTH, "data.hard_negatives": 1}
    for item in overrides:
        key, _, value = item.partition("=")
        settings[key] = value
    pairs = _write_csv(tmp / "pairs.csv", train, ["query", "positive"])
    corpus = _write_csv(tmp / "corpus.csv", docs, ["id", "text", "thread"])
    queries = _write_csv(tmp / "test.csv", test, ["query", "relevant"])
    t0 = time.perf_counter()
    bi = domainfit.train(output=str(tmp / "bi"), task="retrieval", **{
        "data.train": str(pairs), "data.text_column": "query", "data.text_pair_column": "positive", **settings})
    bi_train = time.perf_counter() - t0
    t1 = time.perf_counter()
    domainfit.build_index(bi.path, str(corpus))
    index_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    fine = domainfit.evaluate(bi.path, str(queries), text_column="query", text_pair_column="relevant")
    fine_s = time.perf_counter() - t2

    # Reranker training data: positive, and the bi-encoder's three best wrong documents per query.
    retriever = domainfit.load(bi.path)
    thread_of_text = {d["text"]: d["thread"] for d in docs}
    hits = retriever.search([r["query"] for r in train], k=8)
    pair_rows = []
    for row, found in zip(train, hits):
        pair_rows.append({"query": row["query"], "doc": row["positive"], "label": 1})
        thread = thread_of_text[row["positive"]]
        wrong = [h for h in found if h["thread"] != thread][:3]
        pair_rows += [{"query": row["query"], "doc": h["text"], "label": 0} for h in wrong]
    pair_file = _write_csv(tmp / "rerank.csv", pair_rows, ["query", "doc", "label"])
    t3 = time.perf_counter()
    cross = domainfit.train(output=str(tmp / "cross"), task="pair", **{
        "data.train": str(pair_file), "data.text_column": "query", "data.text_pair_column": "doc",
        "training.epochs": 3, "training.max_length": MAX_LENGTH})
    cross_train = time.perf_counter() - t3
    t4 = time.perf_counter()
    reranked = domainfit.evaluate(bi.path, str(queries), text_column="query", text_pair_column="relevant",
                                  rerank=cross.path, candidates=candidates)
    rerank_s = time.perf_counter() - t4
    keep = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "n")
    return {
        "bi-encoder": {**{k: fine[k] for k in keep}, "queries_per_s": len(test) / fine_s, "train_s": bi_train,
                       "index_s": index_s, "steps": bi.state.global_step},
        "bi-encoder + cross-encoder": {**{k: reranked[k] for k in keep}, "queries_per_s": len(test) / rerank_s,
                                       "train_s": bi_train + cross_train, "index_s": index_s,
                                       "rerank_pairs": len(pair_rows), "candidates": candidates},
    }


def write_markdown(payload: dict) -> None:
    title = "## FAQ retrieval: StackFAQ (all-MiniLM-L6-v2, 2 CPU cores)"
    split = payload["split"]
    lines = [title, "", f"Command: `{COMMAND}`. Split by thread (seed {split['seed']}): {split['train_threads']} "
             f"threads / {split['train_pairs']} training pairs, {split['test_threads']} test threads / "
             f"{split['test_queries']} test queries, corpus {split['documents']} FAQ pairs (all threads). "
             "`recall@k` is the share of queries with a relevant document (any answer of their thread) in the top "
             "k. Queries/s: embedding the queries + searching (+ reranking), not building the index.", "",
             "| system | recall@1 | recall@5 | MRR@10 | NDCG@10 | queries/s | train s |", "|---|---|---|---|---|---|---|"]
    for name, r in payload["systems"].items():
        lines.append(f"| {name} | {r['recall@1']:.4f} | {r['recall@5']:.4f} | {r['mrr@10']:.4f} | "
                     f"{r['ndcg@10']:.4f} | {r['queries_per_s']:.0f} | {r['train_s']:.0f} |")
    replace_section(title, "\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--test-share", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--candidates", type=int, default=10)
    ap.add_argument("--set", action="append", default=[], help="domainfit bi-encoder setting")
    args = ap.parse_args()
    docs, train, test, by_thread, test_threads = _split(args.test_share, args.seed)
    load_before = os.getloadavg()[0]
    systems = {"BM25 (rank_bm25)": _bm25(docs, test), "untuned encoder": _untuned(docs, test)}
    with tempfile.TemporaryDirectory() as tmp:
        systems.update(_domainfit(docs, train, test, Path(tmp), args.candidates, args.set))
    for name, r in systems.items():
        print(f"{name:32s} R@1 {r['recall@1']:.4f} R@5 {r['recall@5']:.4f} MRR@10 {r['mrr@10']:.4f} "
              f"{r['queries_per_s']:.0f} q/s", flush=True)
    payload = {"command": COMMAND + "".join(f" --set {s}" for s in args.set),
               "split": {"seed": args.seed, "test_share": args.test_share, "test_threads": len(test_threads),
                         "train_threads": len(by_thread) - len(test_threads), "train_pairs": len(train),
                         "test_queries": len(test), "documents": len(docs)},
               "systems": systems, "peak_rss_mb": peak_rss_mb(), "load_before": load_before,
               "load_after": os.getloadavg()[0], "machine": machine()}
    write_results("faq_retrieval", payload)
    write_markdown(payload)


if __name__ == "__main__":
    main()
