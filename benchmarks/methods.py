"""Every adaptation method on Banking77 and Financial PhraseBank, in one run.

    python benchmarks/methods.py [--parts zeroshot,zeroshot-lm,fewshot,setfit,full-data,full-data-long]
                                 [--datasets banking77,fpb]
                                 [--shots 8,16] [--seeds 0,1,2] [--rerun]

- zero-shot: label names only, names + descriptions (our own one-line descriptions in
  benchmarks/data/*_labels.csv), names + descriptions with self-training on the training
  texts without their labels, and the LM backend (SmolLM2-135M; Banking77 on 200 test rows);
- few-shot: K examples per class (K in --shots, seeds in --seeds, the same sampled rows for
  both systems): domainfit ``fewshot`` against the ``setfit`` library with the same base
  model and its documented defaults with ``num_iterations=20`` (the SetFit paper's and
  README's setting; see ``_run_setfit``);
- full data: every trainable method with its defaults for at most 3 epochs (early stopping
  on), and ``bitfit``, ``prefix`` and ``prompt`` on Banking77 also with the default 10 epochs
  (``full-data-long``).

Each run is its own subprocess (so that peak RSS is its own) and is cached in
benchmarks/results/methods.json: an interrupted benchmark continues where it stopped;
``--rerun`` measures again. The one-minute load average before and after each run is
recorded, so that runs that shared the CPU are visible. Tables: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import HERE, RESULTS_DIR, SHARED_DATA, machine, peak_rss_mb, replace_section, run_cached  # noqa: E402

DATASETS = {"banking77": SHARED_DATA / "banking77", "fpb": SHARED_DATA / "financial_phrasebank"}
LABEL_FILES = {"banking77": HERE / "data" / "banking77_labels.csv",
               "fpb": HERE / "data" / "financial_phrasebank_labels.csv"}
TITLES = {"banking77": "Banking77", "fpb": "Financial PhraseBank"}
FULL_DATA_METHODS = ["full", "lora", "adalora", "ia3", "prefix", "prompt", "adapter", "bitfit"]
FULL_DATA_EPOCHS = 3
RESULTS_FILE = RESULTS_DIR / "methods.json"
COMMAND = "python benchmarks/methods.py"


# ---------------------------------------------------------------------------- worker side

def _read(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _scores(gold: list[str], pred: list[str]) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(gold, pred)), "macro_f1": float(f1_score(gold, pred, average="macro"))}


def _test_rows(spec: dict) -> list[dict]:
    """The test set, or a seeded sample of ``spec["test_rows"]`` of it (for the slow LM backend)."""
    import random

    test = _read(DATASETS[spec["dataset"]] / "test.csv")
    if spec.get("test_rows") and spec["test_rows"] < len(test):
        test = random.Random(0).sample(test, spec["test_rows"])
    return test


def _few_shot_rows(dataset: str, k: int, seed: int) -> list[dict]:
    """The K-per-class sample both systems train on (domainfit's seeded sampler, after the
    training file's conflicting duplicates are skipped)."""
    from domainfit.data import load_dataset, sample_few_shot

    ds = load_dataset(DATASETS[dataset] / "train.csv", task="classification", on_bad_rows="skip")
    return [{"text": e.text, "label": e.label} for e in sample_few_shot(ds.examples, k, seed)]


def _run_setfit(spec: dict, rows: list[dict], tmp: Path) -> dict:
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    from domainfit.modeling import resolve_model

    t0 = time.perf_counter()
    model = SetFitModel.from_pretrained(str(resolve_model("default").path))
    # The library's defaults, except num_iterations=20: the setting of the SetFit paper and of
    # its README examples (20 pairs per example). Plain TrainingArguments() samples pairs by
    # "oversampling", which on Banking77 8-shot is ~190,000 pairs (~23,000 steps, well over an
    # hour here: stopped after 18 minutes) — the blow-up of setfit #249 / #472.
    # Only where it writes (checkpoints, logs) is changed besides.
    args = TrainingArguments(seed=spec["seed"], num_iterations=20, output_dir=str(tmp / "setfit"),
                             report_to="none")
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_list(rows))
    trainer.train()
    seconds = time.perf_counter() - t0
    test = _test_rows(spec)
    preds = [str(p) for p in model.predict([r["text"] for r in test])]
    body = sum(p.numel() for p in model.model_body.parameters())
    head = getattr(model.model_head, "coef_", None)
    trainable = body + (head.size + model.model_head.intercept_.size if head is not None else 0)
    return {"seconds": seconds, "trainable_parameters": int(trainable), "test": test, "preds": preds}


def _run_domainfit(spec: dict, rows: list[dict] | None, tmp: Path) -> dict:
    import domainfit

    settings: dict = {"data.on_bad_rows": "skip", "training.seed": spec["seed"], "method.name": spec["method"]}
    dataset = spec["dataset"]
    if spec["kind"] == "zeroshot":
        labels = LABEL_FILES[dataset]
        if spec["variant"] == "names":
            names = tmp / "labels.csv"
            names.write_text("label\n" + "".join(r["label"] + "\n" for r in _read(labels)), encoding="utf-8")
            labels = names
        settings["data.labels"] = str(labels)
        if spec["variant"] == "self-training":
            settings["data.unlabelled"] = str(DATASETS[dataset] / "train.csv")
        if spec["variant"] == "lm":
            settings["method.options.backend"] = "lm"
    elif rows is not None:
        train = tmp / "train.csv"
        with open(train, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, ["text", "label"])
            writer.writeheader()
            writer.writerows(rows)
        settings["data.train"] = str(train)
    else:
        settings["data.train"] = str(DATASETS[dataset] / "train.csv")
        settings["training.epochs"] = spec.get("epochs", FULL_DATA_EPOCHS)
    for item in spec.get("overrides", []):
        key, _, value = item.partition("=")
        settings[key] = value
    t0 = time.perf_counter()
    result = domainfit.train(output=str(tmp / "model"), **settings)
    seconds = time.perf_counter() - t0
    test = _test_rows(spec)
    t1 = time.perf_counter()
    preds = [p["label"] for p in domainfit.load(result.path).predict([r["text"] for r in test])]
    predict_seconds = time.perf_counter() - t1
    return {"seconds": seconds, "predict_seconds": predict_seconds,
            "trainable_parameters": result.manifest["method"]["trainable_parameters"],
            "total_parameters": result.manifest["method"]["total_parameters"], "test": test, "preds": preds,
            "steps": result.state.global_step}


def worker(spec: dict) -> None:
    load_before = os.getloadavg()[0]
    rows = _few_shot_rows(spec["dataset"], spec["k"], spec["seed"]) if spec.get("k") else None
    with tempfile.TemporaryDirectory() as tmp:
        if spec["system"] == "setfit":
            out = _run_setfit(spec, rows, Path(tmp))
        else:
            out = _run_domainfit(spec, rows, Path(tmp))
    test, preds = out.pop("test"), out.pop("preds")
    gold = [r["label"] for r in test]
    result = {**spec, **_scores(gold, preds), **out, "train_rows": len(rows) if rows else None,
              "peak_rss_mb": peak_rss_mb(), "load_before": load_before, "load_after": os.getloadavg()[0],
              "machine": machine()}
    print("RESULT " + json.dumps(result, default=float), flush=True)


# ---------------------------------------------------------------------------- parent side

def _key(spec: dict) -> str:
    parts = [spec["dataset"], spec["system"], spec.get("method", ""), spec.get("variant", ""),
             f"k{spec['k']}" if spec.get("k") else "", f"s{spec['seed']}"]
    return "/".join(p for p in parts if p)


def plan(parts: list[str], datasets: list[str], shots: list[int], seeds: list[int]) -> list[dict]:
    specs = []
    for dataset in datasets:
        if "zeroshot" in parts:
            for variant in ("names", "descriptions", "self-training"):
                specs.append({"dataset": dataset, "system": "domainfit", "kind": "zeroshot", "method": "zeroshot",
                              "variant": variant, "seed": 0})
        if "zeroshot-lm" in parts:
            # About 0.3 s per text and label set on 2 cores: Banking77 (77 labels) on a sample.
            specs.append({"dataset": dataset, "system": "domainfit", "kind": "zeroshot", "method": "zeroshot",
                          "variant": "lm", "seed": 0, **({"test_rows": 200} if dataset == "banking77" else {})})
        for k in shots:
            for seed in seeds:
                if "fewshot" in parts:
                    specs.append({"dataset": dataset, "system": "domainfit", "kind": "fewshot", "method": "fewshot",
                                  "k": k, "seed": seed})
                if "setfit" in parts:
                    specs.append({"dataset": dataset, "system": "setfit", "kind": "fewshot", "method": "setfit",
                                  "k": k, "seed": seed})
        if "full-data" in parts:
            for method in FULL_DATA_METHODS:
                specs.append({"dataset": dataset, "system": "domainfit", "kind": "full-data", "method": method,
                              "seed": 42})
        if "full-data-long" in parts:
            # The methods that train the fewest weights converge slowest: the same with the default
            # 10 epochs (early stopping on), to see whether the gap to full closes.
            for method in ("bitfit", "prefix", "prompt"):
                specs.append({"dataset": dataset, "system": "domainfit", "kind": "full-data", "method": method,
                              "variant": "10 epochs", "epochs": 10, "seed": 42})
    return specs


def run(specs: list[dict], rerun: bool) -> dict:
    def summary(r: dict) -> str:
        return (f"accuracy {r['accuracy']:.4f} macro-F1 {r['macro_f1']:.4f} {r['seconds']:.0f} s "
                f"RSS {r['peak_rss_mb']:.0f} MiB load {r['load_before']:.1f}/{r['load_after']:.1f}")

    return run_cached(specs, _key, RESULTS_FILE, __file__, summary, rerun)


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def tables(results: dict) -> str:
    runs = list(results["runs"].values())
    lines = []
    for dataset in DATASETS:
        mine = [r for r in runs if r["dataset"] == dataset]
        if not mine:
            continue
        lines += [f"### {TITLES[dataset]}", "",
                  "| regime | system / method | runs | accuracy | macro-F1 | train s | trainable params | "
                  "peak RSS MiB | max load |", "|---|---|---|---|---|---|---|---|---|"]
        groups: dict[tuple, list[dict]] = {}
        for r in mine:
            regime = {"zeroshot": "zero-shot", "fewshot": f"{r.get('k')}-shot", "full-data": "full data"}[r["kind"]]
            name = r["method"] + (f" ({r['variant']})" if r.get("variant") else "")
            if r.get("test_rows"):
                name += f", {r['test_rows']} test rows"
            groups.setdefault((regime, name), []).append(r)
        order = {"zero-shot": 0, "8-shot": 1, "16-shot": 2, "full data": 3}
        for (regime, name), rs in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0][1])):
            lines.append(
                f"| {regime} | {name} | {len(rs)} | {_mean_std([r['accuracy'] for r in rs])} | "
                f"{_mean_std([r['macro_f1'] for r in rs])} | {statistics.mean(r['seconds'] for r in rs):.0f} | "
                f"{rs[0]['trainable_parameters']:,} | {max(r['peak_rss_mb'] for r in rs):.0f} | "
                f"{max(max(r['load_before'], r['load_after']) for r in rs):.1f} |")
        lines.append("")
    return "\n".join(lines)


def write_markdown(results: dict) -> None:
    title = "## Adaptation methods (all-MiniLM-L6-v2, 2 CPU cores)"
    body = (f"{title}\n\nCommand: `{COMMAND}` (cached per run in `benchmarks/results/methods.json`). "
            "Few-shot rows are the mean ± standard deviation over seeds; both systems train on the same "
            "sampled rows. Train s is the wall time of training alone (test scoring not included). "
            f"Full-data rows: each method's defaults, at most {FULL_DATA_EPOCHS} epochs with early stopping. "
            "Max load is the highest one-minute load average seen around a run (2 = the machine was busy "
            "with that run alone).\n\n" + tables(results))
    replace_section(title, body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="zeroshot,zeroshot-lm,fewshot,setfit,full-data,full-data-long")
    ap.add_argument("--datasets", default="banking77,fpb")
    ap.add_argument("--shots", default="8,16")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--rerun", action="store_true", help="measure again runs that are already cached")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    specs = plan(args.parts.split(","), args.datasets.split(","), [int(k) for k in args.shots.split(",")],
                 [int(s) for s in args.seeds.split(",")])
    results = run(specs, args.rerun)
    results["machine"] = machine()
    RESULTS_FILE.write_text(json.dumps(results, indent=2, default=float) + "\n", encoding="utf-8")
    write_markdown(results)
    print(tables(results))


if __name__ == "__main__":
    main()
