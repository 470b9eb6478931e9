"""Banking77: domainfit with defaults vs a tuned Hugging Face Trainer, same model and data.

    python benchmarks/banking77.py [--peer-epochs 5] [--skip-fp32]

One run trains, one after the other and each in its own subprocess (so that peak RSS is
each system's own): (1) the peer, ``transformers.Trainer`` with dynamic padding,
``group_by_length`` and the learning rate chosen by ``banking77_peer_sweep.py``;
(2) ``domainfit train`` with its defaults; (3) the same with ``--precision fp32``, to
check that the bf16 default is faster at equal accuracy. Each reports wall time,
examples/s, the time to reach 92% test accuracy (the test set is scored every half epoch
by a callback whose own time is not counted), final test accuracy and macro-F1, and peak
RSS. Results: benchmarks/results/banking77.json and a row in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, SHARED_DATA, machine, peak_rss_mb, read_csv, upsert_results_row, write_results  # noqa: E402

TARGET = 0.92
DATA = SHARED_DATA / "banking77"


class TestClock:
    """Training time with the test-set scoring excluded; records when TARGET is first reached."""

    def __init__(self):
        self.start = time.perf_counter()
        self.excluded = 0.0
        self.curve: list[dict] = []
        self.time_to_target: float | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.start - self.excluded

    def score(self, step: int, epoch: float, accuracy_fn) -> None:
        t0 = time.perf_counter()
        now = self.elapsed()
        acc = accuracy_fn()
        self.curve.append({"step": step, "epoch": round(epoch, 3), "seconds": round(now, 1), "test_accuracy": acc})
        if acc >= TARGET and self.time_to_target is None:
            self.time_to_target = now
        print(f"  step {step} epoch {epoch:.2f} t={now:.0f}s test_acc={acc:.4f}", flush=True)
        self.excluded += time.perf_counter() - t0


def _test_accuracy(model, tokenizer, texts, gold, labels, pooled_head) -> tuple[float, list[str]]:
    """Batched, length-sorted test predictions from either system's torch model."""
    import torch

    model.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    preds = [None] * len(texts)
    with torch.no_grad():
        for s in range(0, len(order), 128):
            idx = order[s:s + 128]
            batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=128,
                              return_tensors="pt")
            logits = model(**batch) if pooled_head else model(**batch).logits
            for i, p in zip(idx, logits.argmax(-1).tolist()):
                preds[i] = labels[p]
    model.train()
    return sum(p == g for p, g in zip(preds, gold)) / len(gold), preds


def _macro_f1(gold, preds) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(gold, preds, average="macro"))


def run_peer(args) -> dict:
    import torch
    from banking77_peer_sweep import default_model_path, make_trainer
    from transformers import TrainerCallback

    train_texts, train_labels = read_csv(DATA / "train.csv")
    test_texts, test_labels = read_csv(DATA / "test.csv")
    labels = sorted(set(train_labels))
    clock = TestClock()
    eval_every = max(1, round(len(train_texts) / 32 / 2))

    class Probe(TrainerCallback):
        def on_step_end(self, targs, state, control, model=None, **kw):
            if state.global_step % eval_every == 0:
                clock.score(state.global_step, state.epoch, lambda: _test_accuracy(
                    model, tok, test_texts, test_labels, labels, False)[0])

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(default_model_path())
    with tempfile.TemporaryDirectory() as out:
        trainer = make_trainer(default_model_path(), (train_texts, train_labels), None, labels, args.peer_lr,
                               args.peer_epochs, out, callbacks=[Probe()])
        clock.start = time.perf_counter()
        trainer.train()
        wall = clock.elapsed()
        acc, preds = _test_accuracy(trainer.model, tok, test_texts, test_labels, labels, False)
    n_seen = len(train_texts) * args.peer_epochs
    return {"system": f"HF Trainer (lr {args.peer_lr:g}, {args.peer_epochs:g} epochs, fp32)", "wall_s": wall,
            "examples_per_s": n_seen / wall, "time_to_92_s": clock.time_to_target, "accuracy": acc,
            "macro_f1": _macro_f1(test_labels, preds), "peak_rss_mb": peak_rss_mb(), "curve": clock.curve,
            "threads": torch.get_num_threads()}


def run_domainfit(args) -> dict:
    import domainfit
    from domainfit.inference import Predictor
    from domainfit.training.memory import release_free_memory

    test_texts, test_labels = read_csv(DATA / "test.csv")
    clock = TestClock()
    holder: dict = {}

    def probe(event, state, info):
        if event == "start":
            holder["model"] = info["model"]
        elif event == "step" and state.global_step % holder["every"] == 0:
            model, tok, labels = holder["model"], holder["tok"], holder["labels"]
            clock.score(state.global_step, info["epoch"],
                        lambda: _test_accuracy(model, tok, test_texts, test_labels, labels, True)[0])

    from transformers import AutoTokenizer

    from domainfit.modeling import resolve_model

    holder["tok"] = AutoTokenizer.from_pretrained(str(resolve_model("default").path))
    holder["labels"] = sorted(set(read_csv(DATA / "train.csv")[1]))
    holder["every"] = max(1, round(9003 / 32 / 2))
    with tempfile.TemporaryDirectory() as out:
        settings = {"data.train": str(DATA / "train.csv")}
        if args.precision:
            settings["training.precision"] = args.precision
        for item in args.set:
            key, _, value = item.partition("=")
            settings[key] = int(value) if value.isdigit() else value
        clock.start = time.perf_counter()
        result = domainfit.train(output=str(Path(out) / "m"), callbacks=[probe], **settings)
        wall = clock.elapsed()
        # Predict the way a user does, from the saved artifact; drop the training copy first.
        holder.clear()
        result.model = None
        release_free_memory()
        predictor = Predictor(result.path)
        preds = [p["label"] for p in predictor.predict(test_texts)]
        examples = sum(32 for _ in range(result.state.global_step))
        manifest = result.manifest
    acc = sum(p == g for p, g in zip(preds, test_labels)) / len(test_labels)
    name = f"domainfit --precision {args.precision}" if args.precision else "domainfit defaults"
    return {"system": f"{name} ({manifest['training']['precision']})", "wall_s": wall,
            "examples_per_s": examples / wall, "time_to_92_s": clock.time_to_target, "accuracy": acc,
            "macro_f1": _macro_f1(test_labels, preds), "peak_rss_mb": peak_rss_mb(), "curve": clock.curve,
            "steps": result.state.global_step, "best_step": result.state.best_step,
            "stopped_early": result.state.stopped_early}


def _worker(kind: str, extra: list[str]) -> dict:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    cmd = [sys.executable, __file__, "--worker", kind, "--worker-out", str(out), *extra]
    print(f"== {kind}: {' '.join(cmd[2:])}", flush=True)
    subprocess.run(cmd, check=True)
    return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer-epochs", type=float, default=5)
    ap.add_argument("--peer-lr", type=float, default=None, help="default: best of banking77_peer_sweep.json")
    ap.add_argument("--skip-fp32", action="store_true")
    ap.add_argument("--worker", choices=["peer", "domainfit"])
    ap.add_argument("--worker-out")
    ap.add_argument("--precision")
    ap.add_argument("--set", action="append", default=[], help="a domainfit setting for the worker, key=value")
    args = ap.parse_args()
    if args.worker:
        if args.peer_lr is None:
            args.peer_lr = json.loads((RESULTS_DIR / "banking77_peer_sweep.json").read_text())["best_lr"]
        result = run_peer(args) if args.worker == "peer" else run_domainfit(args)
        Path(args.worker_out).write_text(json.dumps(result))
        return
    common = ["--peer-epochs", str(args.peer_epochs)] + (["--peer-lr", str(args.peer_lr)] if args.peer_lr else [])
    peer = _worker("peer", common)
    ours = _worker("domainfit", common)
    runs = [peer, ours]
    if not args.skip_fp32:
        runs.append(_worker("domainfit", common + ["--precision", "fp32"]))
    ratios = {
        "time_to_92": (ours["time_to_92_s"] / peer["time_to_92_s"]) if ours["time_to_92_s"] and peer["time_to_92_s"] else None,
        "wall": ours["wall_s"] / peer["wall_s"],
        "peak_rss": ours["peak_rss_mb"] / peer["peak_rss_mb"],
    }
    command = "python benchmarks/banking77.py" + (" --skip-fp32" if args.skip_fp32 else "")
    write_results("banking77", {"runs": runs, "ratios_domainfit_over_peer": ratios, "target_accuracy": TARGET,
                                "machine": machine(), "command": command})
    for r in runs:
        t92 = f"{r['time_to_92_s']:.0f}" if r["time_to_92_s"] else "never"
        upsert_results_row(
            "Banking77 (test 3080, all-MiniLM-L6-v2, 2 CPU cores)", f"| {r['system']} ",
            "| system | accuracy | macro-F1 | train s | examples/s | s to 92% | peak RSS MiB | command |\n"
            "|---|---|---|---|---|---|---|---|",
            f"| {r['system']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['wall_s']:.0f} | "
            f"{r['examples_per_s']:.0f} | {t92} | {r['peak_rss_mb']:.0f} | `{command}` |")
    print(json.dumps(ratios, indent=2))


if __name__ == "__main__":
    main()
