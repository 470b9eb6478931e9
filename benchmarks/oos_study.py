"""Which text vectors separate unseen Banking77 intents best? A study behind the detectors.

    python benchmarks/oos_study.py [--held-out 10] [--seed 0]

Uses the held-out bundle of benchmarks/customer_service.py (``--held-out`` intents removed
from training, seeded; built and cached in benchmarks/work/ when missing). For the
fine-tuned intent encoder and for the untuned base encoder (all-MiniLM-L6-v2), the
mean-pooled output of every layer is scored with Mahalanobis distance and with kNN
cosine distance (fitted on the bundle's training split); the sum of the standardised
Mahalanobis scores of all layers (Podolskiy et al., 2021); and rank fusion of
max-softmax with the best vector scores. For each: AUROC on the Banking77 test set
(unseen intents positive) and the *oracle* out-of-scope recall at most 1 point of
in-scope accuracy lost (threshold chosen on the test set itself: an upper bound of what a
calibrated threshold can reach). Then far from the domain: the four detectors of
``domainfit.ood`` (as a bundle fits them) on messages of other domains (Financial
PhraseBank test sentences, Symptom2Disease test descriptions) against the in-scope
Banking77 test messages: AUROC. Results: results/oos_study.json and RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from _common import SHARED_DATA, machine, read_csv, replace_section, write_results  # noqa: E402

COMMAND = "python benchmarks/oos_study.py"


def _layers(encoder, tokenizer, texts: list[str], max_length: int, batch_size: int = 64) -> np.ndarray:
    """Mean-pooled hidden states of every layer (embeddings excluded): (layers, n, hidden)."""
    order = np.argsort([len(t) for t in texts])
    out = None
    for start in range(0, len(texts), batch_size):
        idx = order[start:start + batch_size]
        batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                          return_tensors="pt")
        with torch.no_grad():
            states = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                             output_hidden_states=True).hidden_states[1:]
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = torch.stack([(h * mask).sum(1) / mask.sum(1) for h in states]).numpy()
        if out is None:
            out = np.zeros((pooled.shape[0], len(texts), pooled.shape[2]), np.float32)
        out[:, idx] = pooled
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--held-out", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from transformers import AutoModel, AutoTokenizer

    import customer_service
    from domainfit.data import ColumnSpec, load_dataset, train_val_split
    from domainfit.inference import load
    from domainfit.modeling import resolve_model
    from domainfit.ood import METHODS, OutOfScopeDetector, auroc, tradeoff

    held = customer_service.held_out_bundle(args.held_out, args.seed)
    model = load(held["bundle"] / "intent")
    index = {n: i for i, n in enumerate(model.labels)}
    ds = load_dataset(held["train_csv"], task="classification", columns=ColumnSpec("text", "label"))
    train_ex, _ = train_val_split(ds.examples, held["validation_share"], held["seed"])
    y_train = np.array([index[e.label] for e in train_ex])
    texts, labels = read_csv(SHARED_DATA / "banking77" / "test.csv")
    in_scope = np.array([y not in held["unseen"] for y in labels])
    gold = np.array([index.get(y, -1) for y in labels])
    _, logits = model.features(texts)
    correct = (logits.argmax(1) == gold) & in_scope
    no_fallback = float(correct.sum() / in_scope.sum())

    rows: dict[str, dict] = {}
    scores: dict[str, np.ndarray] = {}

    def record(name: str, s: np.ndarray) -> None:
        curve = tradeoff(s, correct, in_scope, points=401)
        ok = [p["oos_recall"] for p in curve if p["in_scope_accuracy"] >= no_fallback - 0.01]
        rows[name] = {"auroc": auroc(s, in_scope), "oracle_recall_at_1pt": max(ok, default=0.0)}
        scores[name] = s
        print(f"{name:45s} AUROC {rows[name]['auroc']:.4f}  oracle recall at 1 pt {rows[name]['oracle_recall_at_1pt']:.3f}",
              flush=True)

    record("max-softmax (fine-tuned)", OutOfScopeDetector("max-softmax").score(np.zeros((len(texts), 1)), logits))
    base_path = resolve_model("default").path
    encoders = {"fine-tuned": (model.model.encoder.eval(), model.tokenizer),
                "base": (AutoModel.from_pretrained(str(base_path)).eval(), AutoTokenizer.from_pretrained(str(base_path)))}
    train_texts = [e.text for e in train_ex]
    for name, (encoder, tokenizer) in encoders.items():
        f_train = _layers(encoder, tokenizer, train_texts, model.max_length)
        f_test = _layers(encoder, tokenizer, texts, model.max_length)
        total = np.zeros(len(texts))
        for layer in range(f_train.shape[0]):
            for method in ("mahalanobis", "knn"):
                det = OutOfScopeDetector.fit(method, f_train[layer], y_train, len(model.labels))
                s = det.score(f_test[layer], logits)
                record(f"{name} {method}, layer {layer + 1}", s)
                if method == "mahalanobis":
                    total += (s - s.mean()) / s.std()
        record(f"{name} mahalanobis, sum of all layers", total)
    last = model.model.encoder.config.num_hidden_layers

    def rank(s: np.ndarray) -> np.ndarray:
        return np.argsort(np.argsort(s)) / len(s)

    for other in (f"fine-tuned knn, layer {last}", f"fine-tuned mahalanobis, layer {last}", f"base knn, layer {last}"):
        record(f"rank fusion: max-softmax + {other}", rank(scores["max-softmax (fine-tuned)"]) + rank(scores[other]))

    far: dict[str, dict[str, float]] = {}
    f_train_ft, _ = model.features(train_texts)
    detectors = {m: OutOfScopeDetector.fit(m, f_train_ft, y_train, len(model.labels)) for m in METHODS}
    f_in, l_in = model.features([t for t, keep in zip(texts, in_scope) if keep])
    for dataset in ("financial_phrasebank", "symptom2disease"):
        other, _ = read_csv(SHARED_DATA / dataset / "test.csv")
        f_out, l_out = model.features(other)
        truth = np.r_[np.ones(len(f_in), bool), np.zeros(len(f_out), bool)]
        for method, det in detectors.items():
            s = np.r_[det.score(f_in, l_in), det.score(f_out, l_out)]
            far.setdefault(method, {})[dataset] = auroc(s, truth)
        print(dataset, {m: round(far[m][dataset], 4) for m in METHODS}, flush=True)

    best = max(rows, key=lambda k: rows[k]["oracle_recall_at_1pt"])
    write_results("oos_study", {"command": COMMAND, "held_out_intents": held["unseen"],
                                "no_fallback_in_scope_accuracy": no_fallback, "rows": rows, "best": best,
                                "far_from_domain_auroc": far, "machine": machine()})
    lines = ["## Out-of-scope study: which vectors separate unseen intents", "",
             f"Command: `{COMMAND}`. The held-out bundle of the customer-service benchmark ({args.held_out} "
             f"Banking77 intents unseen, seed {args.seed}); AUROC on the test set and the *oracle* out-of-scope "
             "recall at ≤ 1 point of in-scope accuracy lost (threshold picked on the test set itself: an upper "
             "bound). Mean-pooled output of each layer, Mahalanobis (shared Ledoit–Wolf covariance) and kNN "
             "(10th-nearest cosine distance).", "",
             "| vectors / score | AUROC | oracle OOS recall at 1 pt |", "|---|---|---|"]
    shown = ["max-softmax (fine-tuned)"] + [k for k in rows if k.endswith(f"layer {last}") or "sum" in k
                                            or "fusion" in k or k.endswith("layer 3")]
    lines += [f"| {k} | {rows[k]['auroc']:.4f} | {rows[k]['oracle_recall_at_1pt']:.3f} |" for k in shown]
    lines += ["", f"Best: {best} ({rows[best]['oracle_recall_at_1pt']:.3f}). Every layer's row is in "
              "`benchmarks/results/oos_study.json`.", "",
              "Far from the domain (the bundle's detectors; AUROC of in-scope Banking77 test messages against "
              "other domains' texts):", "",
              "| detector | Financial PhraseBank | Symptom2Disease |", "|---|---|---|"]
    lines += [f"| {m} | {far[m]['financial_phrasebank']:.4f} | {far[m]['symptom2disease']:.4f} |" for m in METHODS]
    replace_section(lines[0], "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
