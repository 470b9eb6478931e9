"""NER on WNUT-17 (English) and Resume NER (Chinese): domainfit beside a Hugging Face peer.

    python benchmarks/ner.py [--datasets wnut17,resume_ner] [--systems domainfit,peer] [--rerun]
                             [--set training.epochs=5 ...] [--base pretrained]

Both systems fine-tune the same base model (the packaged all-MiniLM-L6-v2) on the same
train split, use the validation split, and are scored on test with the same scorer
(entity-level micro precision / recall / F1, seqeval conventions; every word's tag is the
one of its first sub-word, predicted sequences repaired to valid BIO):

- ``domainfit``: ``domainfit.train(task="token-classification")`` with its defaults
  (early stopping on validation entity F1); with ``--base pretrained`` it starts from a base
  that ``domainfit pretrain --extend-vocab`` made from the training split's words (labels
  unused; task-adaptive pre-training, 10 passes), built once per data set and reused;
- ``peer``: ``transformers.Trainer`` with ``AutoModelForTokenClassification`` as in the
  Hugging Face token-classification tutorial (first sub-word labelled, the rest -100,
  learning rate 5e-5 for this small model, batch 32, 5 epochs, fp32, dynamic padding),
  scored on the last epoch.

Each run is a subprocess (its own peak RSS), cached in benchmarks/results/ner.json.
Published figures for comparable encoders are in RESULTS.md beside ours.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, SHARED_DATA, cpu_kind, machine, peak_rss_mb, replace_section, run_cached  # noqa: E402

DATASETS = {"wnut17": "WNUT-17 (English)", "resume_ner": "Resume NER (Chinese, characters)"}
RESULTS_FILE = RESULTS_DIR / "ner.json"
WORK = Path(__file__).resolve().parent / "work" / "ner"
COMMAND = "python benchmarks/ner.py"
PEER_LR, PEER_EPOCHS = 5e-5, 5


def _rows(dataset: str, split: str) -> list[dict]:
    path = SHARED_DATA / dataset / f"{split}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _pretrained_base(dataset: str) -> tuple[Path, dict]:
    """The task-adaptive base of ``dataset`` (built on first use) and its record."""
    from domainfit.run.pretrain import pretrain

    base = WORK / f"{dataset}-base"
    if not (base / "pretrain.json").is_file():
        pretrain(SHARED_DATA / dataset / "train.jsonl", base, extend_vocab=True, overwrite=True)
    record = json.loads((base / "pretrain.json").read_text(encoding="utf-8"))
    vocabulary = {k: v for k, v in record["vocabulary"].items() if k != "first_added"}
    return base, {"pretrain_seconds": record["training"]["seconds_this_session"],
                  "pretrain_steps": record["training"]["steps"], "vocabulary": vocabulary,
                  "pretrain_validation": record["validation"]}


def _run_domainfit(dataset: str, overrides: list[str], tmp: Path, base: str | None = None) -> dict:
    import domainfit

    folder = SHARED_DATA / dataset
    settings = {"task": "token-classification", "data.train": str(folder / "train.jsonl"),
                "data.validation": str(folder / "validation.jsonl")}
    extra: dict = {}
    if base == "pretrained":
        path, extra = _pretrained_base(dataset)
        settings["model"] = str(path)
    for item in overrides:  # read as --set reads them: numbers, true/false
        key, _, value = item.partition("=")
        settings[key] = yaml.safe_load(value)
    t0 = time.perf_counter()
    result = domainfit.train(output=str(tmp / "model"), **settings)
    seconds = time.perf_counter() - t0
    test = _rows(dataset, "test")
    model = domainfit.load(result.path)
    t1 = time.perf_counter()
    preds = model.predict_tokens([r["tokens"] for r in test])
    predict_seconds = time.perf_counter() - t1
    return {"seconds": seconds, "predict_seconds": predict_seconds, "steps": result.state.global_step,
            "validation_f1": result.state.best_score, "best_step": result.state.best_step,
            "epochs_run": round(result.state.global_step / max(1, result.state.total_steps)
                                * float(settings.get("training.epochs", 10)), 2),
            "gold": [r["tags"] for r in test], "pred": [p["tags"] for p in preds], **extra}


def _run_peer(dataset: str, tmp: Path) -> dict:
    import torch
    from transformers import (AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification,
                              Trainer, TrainingArguments)

    from domainfit.data.tokens import repair_bio
    from domainfit.modeling import resolve_model
    from domainfit.tasks import get_task

    path = str(resolve_model("default").path)
    train, val, test = (_rows(dataset, s) for s in ("train", "validation", "test"))
    labels = get_task("token-classification").label_list([r["tags"] for r in train])
    index = {t: i for i, t in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(path)

    def encode(rows):
        enc = tokenizer([r["tokens"] for r in rows], is_split_into_words=True, truncation=True, max_length=128)
        out = []
        for n, r in enumerate(rows):
            previous, targets = None, []
            for word in enc.word_ids(n):
                targets.append(-100 if word is None or word == previous else index.get(r["tags"][word], 0))
                previous = word
            out.append({"input_ids": enc["input_ids"][n], "attention_mask": enc["attention_mask"][n],
                        "labels": targets})
        return out, enc

    t0 = time.perf_counter()
    model = AutoModelForTokenClassification.from_pretrained(path, num_labels=len(labels))
    args = TrainingArguments(output_dir=str(tmp / "peer"), learning_rate=PEER_LR, per_device_train_batch_size=32,
                             per_device_eval_batch_size=64, num_train_epochs=PEER_EPOCHS, weight_decay=0.01,
                             warmup_steps=0, save_strategy="no", eval_strategy="no", report_to="none", seed=42,
                             use_cpu=True)
    trainer = Trainer(model=model, args=args, train_dataset=encode(train)[0],
                      data_collator=DataCollatorForTokenClassification(tokenizer))
    trainer.train()
    seconds = time.perf_counter() - t0
    rows, enc = encode(test)
    t1 = time.perf_counter()
    model.eval()
    preds = []
    with torch.no_grad():
        for start in range(0, len(rows), 64):
            batch = DataCollatorForTokenClassification(tokenizer)(
                [{k: v for k, v in r.items() if k != "labels"} for r in rows[start:start + 64]])
            logits = model(**batch).logits.argmax(-1).tolist()
            for n, row_logits in enumerate(logits):
                i = start + n
                tags = ["O"] * len(test[i]["tokens"])
                previous = None
                for position, word in enumerate(enc.word_ids(i)):
                    if word is not None and word != previous:
                        tags[word] = labels[row_logits[position]]
                    previous = word
                preds.append(repair_bio(tags))
    predict_seconds = time.perf_counter() - t1
    return {"seconds": seconds, "predict_seconds": predict_seconds, "gold": [r["tags"] for r in test],
            "pred": preds}


def worker(spec: dict) -> None:
    from domainfit.tasks.token import entity_metrics

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        if spec["system"] == "peer":
            out = _run_peer(spec["dataset"], Path(tmp))
        else:
            out = _run_domainfit(spec["dataset"], spec.get("overrides", []), Path(tmp), spec.get("base"))
    metrics = entity_metrics(out.pop("gold"), out.pop("pred"))
    result = {**spec, **{k: metrics[k] for k in ("precision", "recall", "f1", "macro_f1", "token_accuracy")},
              "per_type": metrics["per_type"], **out, "peak_rss_mb": peak_rss_mb(), "load_before": load_before,
              "load_after": os.getloadavg()[0], "machine": machine()}
    print("RESULT " + json.dumps(result, default=float), flush=True)


def _key(spec: dict) -> str:
    return "/".join([spec["dataset"], spec["system"]] + (["base=" + spec["base"]] if spec.get("base") else [])
                    + spec.get("overrides", []))


def run(specs: list[dict], rerun: bool) -> dict:
    def summary(r: dict) -> str:
        val = f"val F1 {r['validation_f1']:.4f} " if r.get("validation_f1") is not None else ""
        return (val + f"P {r['precision']:.4f} R {r['recall']:.4f} F1 {r['f1']:.4f} {r['seconds']:.0f} s "
                f"RSS {r['peak_rss_mb']:.0f} MiB load {r['load_before']:.1f}/{r['load_after']:.1f}")

    return run_cached(specs, _key, RESULTS_FILE, __file__, summary, rerun)


def _cpu(r: dict) -> str:
    m = r.get("machine") or {}
    return f"{cpu_kind(m)}; {'fp32' if r['system'] == 'peer' else m.get('auto_precision', '?')}"


def _base_label(r: dict) -> str:
    v = r["vocabulary"]
    return (f"from a `pretrain --extend-vocab` base ({r['pretrain_steps']:,} steps, {r['pretrain_seconds']:.0f} s; "
            f"[UNK] {v['unk_share_before']:.1%} → {v['unk_share_after']:.1%})")


def write_markdown(results: dict) -> None:
    title = "## NER: WNUT-17 and Resume NER (all-MiniLM-L6-v2, 2 CPU cores)"
    lines = [title, "", f"Command: `{COMMAND}` (cached per run in `benchmarks/results/ner.json`). Entity-level "
             "micro precision/recall/F1 on test, one scorer for both systems (seqeval conventions). Peer: "
             f"`transformers.Trainer` + `AutoModelForTokenClassification`, lr {PEER_LR}, {PEER_EPOCHS} epochs, fp32, "
             "batch 32. domainfit: `--task token-classification` defaults, validation split for early stopping "
             "(its best entity F1 is the validation column: settings are chosen on it, not on test).",
             "", "| data set | system | validation F1 | precision | recall | F1 | token acc. | train s | predict s | "
             "peak RSS MiB | max load | CPU; precision |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, r in sorted(results["runs"].items()):
        name = " ".join([r["system"]] + ([_base_label(r)] if r.get("base") else []) + r.get("overrides", []))
        val = f"{r['validation_f1']:.4f}" if r.get("validation_f1") is not None else "–"
        lines.append(f"| {DATASETS[r['dataset']]} | {name} | {val} | {r['precision']:.4f} | {r['recall']:.4f} | "
                     f"**{r['f1']:.4f}** | {r['token_accuracy']:.4f} | {r['seconds']:.0f} | "
                     f"{r['predict_seconds']:.1f} | {r['peak_rss_mb']:.0f} | "
                     f"{max(r['load_before'], r['load_after']):.1f} | {_cpu(r)} |")
    replace_section(title, "\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="wnut17,resume_ner")
    ap.add_argument("--systems", default="domainfit,peer")
    ap.add_argument("--set", action="append", default=[], help="domainfit setting, e.g. training.epochs=5")
    ap.add_argument("--base", choices=["pretrained"], help="domainfit from a pretrain --extend-vocab base of the "
                    "training words instead of the default model")
    ap.add_argument("--rerun", action="store_true")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    specs = [{"dataset": d, "system": s, **({"overrides": args.set} if s == "domainfit" and args.set else {}),
              **({"base": args.base} if s == "domainfit" and args.base else {})}
             for d in args.datasets.split(",") for s in args.systems.split(",")]
    results = run(specs, args.rerun)
    results["machine"] = machine()
    RESULTS_FILE.write_text(json.dumps(results, indent=2, default=float) + "\n", encoding="utf-8")
    write_markdown(results)


if __name__ == "__main__":
    main()
