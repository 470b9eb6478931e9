"""Inference on the Banking77 test set, side by side: the transformers text-classification
pipeline, domainfit torch, domainfit ONNX fp32 and domainfit ONNX int8.

    python benchmarks/inference.py [--rounds 3] [--slice 384] [--latency-texts N] [--student N] [--end-to-end 1500]

Models (cached in benchmarks/work/, trained once when missing):
- the peer: all-MiniLM-L6-v2 fine-tuned by ``transformers.Trainer`` (lr 2e-4, 5 epochs: the
  best of the peer sweep in RESULTS.md), run by ``pipeline("text-classification",
  batch_size=32)``;
- domainfit: ``domainfit train`` with its defaults, then ``domainfit export`` to ONNX fp32
  and int8 (the parity check runs as in normal use);
- with ``--student N``: a shallower model for CPUs without VNNI, where int8 gains less:
  ``domainfit train --model M --teacher M --set training.layers=N`` (N of the trained
  model's layers, spread over its depth, taught by the model itself), exported to int8.

For each system: the time of a whole fresh process over 1,500 test texts (``--end-to-end``:
``domainfit predict`` against a pipeline script, start-up and loading included, which is what
a user who labels a file waits for), throughput over all 3,080 test texts (after a warm-up pass over 256),
latency of single texts (p50 and p99 over all test texts, or ``--latency-texts`` of them,
sent one at a time) and test accuracy. Results: benchmarks/results/inference.json (the latest
run, which ``serve_load.py`` compares with) and a RESULTS.md section per CPU kind (AVX-512 VNNI,
AVX2 only), since int8's gain depends on it.

The machine's speed moves by tens of percent from one second to the next (it is shared),
so the systems take turns: each of ``--rounds`` rounds cuts the test set into
consecutive slices of ``--slice`` texts (file order, as a whole-set run would see them), and
every system runs every slice, in a fresh random order per slice. A system's throughput in
a round is the round's texts over its summed time; the figure is the median over rounds,
and the speed-up the median of each round's ratio to the pipeline. A slow spell then hits
all systems alike, where whole-set turns (the first version of this benchmark) let one
system's 3-second run land in a slow spell and another's in a fast one.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import HERE, SHARED_DATA, cpu_kind, machine, peak_rss_mb, read_csv, replace_section, write_results  # noqa: E402

DATA = SHARED_DATA / "banking77"
WORK = HERE / "work"
COMMAND = "python benchmarks/inference.py"


def _peer_model() -> Path:
    """The HF Trainer fine-tuned peer, saved for the pipeline (trained once)."""
    folder = WORK / "banking77-peer"
    if (folder / "config.json").is_file():
        return folder
    import tempfile

    from banking77_peer_sweep import default_model_path, make_trainer
    from transformers import AutoTokenizer

    texts, labels = read_csv(DATA / "train.csv")
    names = sorted(set(labels))
    with tempfile.TemporaryDirectory() as out:
        trainer = make_trainer(default_model_path(), (texts, labels), None, names, 2e-4, 5, out)
        trainer.train()
        trainer.model.config.id2label = dict(enumerate(names))
        trainer.model.config.label2id = {n: i for i, n in enumerate(names)}
        trainer.model.save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(default_model_path()).save_pretrained(str(folder))
    return folder


def _domainfit_models(student: int | None) -> dict[str, Path]:
    import domainfit
    from domainfit.export import export_model

    torch_model = WORK / "banking77-domainfit"
    if not (torch_model / "domainfit.json").is_file():
        domainfit.train(output=str(torch_model), overwrite=True, **{"data.train": str(DATA / "train.csv")})
    out = {"torch": torch_model}
    exports = [("onnx-fp32", torch_model, None), ("onnx-int8", torch_model, "int8")]
    if student:
        small = WORK / f"banking77-student-{student}"
        if not (small / "domainfit.json").is_file():
            domainfit.train(output=str(small), overwrite=True, model=str(torch_model), **{
                "data.train": str(DATA / "train.csv"), "training.teacher": str(torch_model),
                "training.layers": student})
        exports.append((f"onnx-int8, {student}-layer student", small, "int8"))
    for name, source, quantize in exports:
        folder = WORK / f"banking77-{name.replace(', ', '-').replace(' ', '-')}"
        shutil.rmtree(folder, ignore_errors=True)
        export_model(source, folder, quantize=quantize, min_agreement=0.95)
        out[name] = folder
    return out


def _interleaved(runners: dict, texts: list[str], gold: list[str], rounds: int, size: int):
    """Per system: the texts/s of each round and the accuracy over all texts. Every system
    runs every slice of the test set (consecutive texts, in file order) before the next slice
    starts, in a random order per slice, so that the machine's slow and fast spells are shared."""
    rng = random.Random(0)
    slices = [range(start, min(start + size, len(texts))) for start in range(0, len(texts), size)]
    for many, _ in runners.values():
        many(texts[:256])  # warm-up
    speeds: dict[str, list[float]] = {name: [] for name in runners}
    predicted: dict[str, list] = {name: [None] * len(texts) for name in runners}
    for _ in range(rounds):
        seconds = dict.fromkeys(runners, 0.0)
        for part in slices:
            batch = [texts[i] for i in part]
            for name in rng.sample(list(runners), len(runners)):
                t0 = time.perf_counter()
                labels = runners[name][0](batch)
                seconds[name] += time.perf_counter() - t0
                for i, label in zip(part, labels):
                    predicted[name][i] = label
        for name in runners:
            speeds[name].append(len(texts) / seconds[name])
    accuracy = {name: sum(p == g for p, g in zip(labels, gold)) / len(gold) for name, labels in predicted.items()}
    return speeds, accuracy


def _latency(predict_one, texts: list[str], latency_texts: int) -> dict:
    """p50 and p99 of single-text calls, one system at a time. Over all 3,080 test texts by
    default: the machine has slow spells (a few hundred milliseconds at 3-4x the usual time),
    and one spell covers more than 1% of a 300-text sample, which then decides its p99.
    (Taking turns text by text, as the throughput does slice by slice, was tried and dropped:
    the runtimes' spinning thread pools then slow each other, 2-2.5x at the p50.)"""
    sample = random.Random(0).sample(texts, latency_texts)
    for text in sample[:20]:
        predict_one(text)  # warm-up at batch size 1
    latencies = []
    for text in sample:
        t1 = time.perf_counter()
        predict_one(text)
        latencies.append((time.perf_counter() - t1) * 1000)
    latencies.sort()
    return {"p50_ms": statistics.median(latencies),
            "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]}


def _pipeline_worker(model: str, data: str, out: str) -> None:
    """The peer as a user runs it from a script: load the pipeline, label a CSV, write JSONL."""
    import json

    from transformers import pipeline

    texts, _ = read_csv(Path(data))
    pipe = pipeline("text-classification", model=model, device=-1, batch_size=32, truncation=True)
    with open(out, "w", encoding="utf-8") as fh:
        for text, r in zip(texts, pipe(texts)):
            fh.write(json.dumps({"text": text, "label": r["label"], "score": r["score"]}) + "\n")


def _end_to_end(peer_dir: Path, models: dict[str, Path], texts: list[str], gold: list[str], n: int,
                rounds: int) -> dict:
    """Seconds of a whole fresh process that labels ``n`` test texts (a random sample, as a
    CSV) and writes them out: ``domainfit predict`` for each export, a pipeline script for
    the peer (start-up, imports and loading included). The systems take turns in each round;
    the figure is the median over rounds."""
    import csv
    import subprocess

    sample = random.Random(1).sample(range(len(texts)), n)
    data = WORK / f"end_to_end_{n}.csv"
    with open(data, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows([texts[i], gold[i]] for i in sample)
    out = WORK / "end_to_end_out.jsonl"
    commands = {"transformers pipeline (batch 32)": [sys.executable, __file__, "--pipeline-worker", str(peer_dir),
                                                     str(data), str(out)]}
    for name, folder in models.items():
        if name != "torch":
            commands[f"domainfit {name}"] = [sys.executable, "-m", "domainfit.cli", "predict", str(folder), "--data",
                                             str(data), "--output", str(out)]
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, command in commands.items():
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            seconds[name].append(time.perf_counter() - started)
    peer = statistics.median(seconds["transformers pipeline (batch 32)"])
    return {name: {"seconds": statistics.median(s), "rounds_seconds": s,
                   "speed_vs_pipeline": peer / statistics.median(s)} for name, s in seconds.items()}


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--pipeline-worker":
        return _pipeline_worker(*sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency-texts", type=int, default=None,
                    help="single-text latency over this many test texts (default: all)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="throughput rounds; each runs every system over the whole test set, in turns of a slice")
    ap.add_argument("--slice", type=int, default=384,
                    help="texts per turn (384: 12 batches of the pipeline's 32, 6 of domainfit's 64)")
    ap.add_argument("--end-to-end", type=int, default=1500,
                    help="also time whole `domainfit predict` runs over this many test texts (0: skip)")
    ap.add_argument("--student", type=int, default=None,
                    help="also a student of this many layers, taught by the domainfit model, in int8")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    texts, gold = read_csv(DATA / "test.csv")
    latency_texts = min(args.latency_texts or len(texts), len(texts))
    peer_dir = _peer_model()
    models = _domainfit_models(args.student)
    load_before = os.getloadavg()[0]

    from transformers import pipeline

    import domainfit

    pipe = pipeline("text-classification", model=str(peer_dir), device=-1, batch_size=32, truncation=True)
    runners = {"transformers pipeline (batch 32)": (lambda xs: [r["label"] for r in pipe(xs)], lambda x: pipe(x))}
    loaded = {}
    for name, folder in models.items():
        model = loaded[name] = domainfit.load(folder)
        runners[f"domainfit {name}"] = (lambda xs, m=model: [p["label"] for p in m.predict(xs, top_k=1)],
                                        lambda x, m=model: m.predict([x], top_k=1))
    rounds, accuracy = _interleaved(runners, texts, gold, args.rounds, args.slice)
    peer = "transformers pipeline (batch 32)"
    systems = {}
    for name, (_, one) in runners.items():
        ratios = [s / p for s, p in zip(rounds[name], rounds[peer])]
        systems[name] = {"texts_per_s": statistics.median(rounds[name]), "rounds_texts_per_s": rounds[name],
                         "speed_vs_pipeline": statistics.median(ratios), "rounds_speed_vs_pipeline": ratios,
                         "accuracy": accuracy[name], **_latency(one, texts, latency_texts)}
        key = name.removeprefix("domainfit ")
        if key in loaded and key != "torch":
            systems[name]["parity"] = loaded[key].manifest["export"]["parity"]
    for name, r in systems.items():
        print(f"{name:36s} {r['texts_per_s']:7.0f} texts/s ({r['speed_vs_pipeline']:.2f}x)  p50 {r['p50_ms']:.1f} ms  "
              f"p99 {r['p99_ms']:.1f} ms  accuracy {r['accuracy']:.4f}", flush=True)
    end_to_end = _end_to_end(peer_dir, models, texts, gold, args.end_to_end, args.rounds) if args.end_to_end else {}
    for name, r in end_to_end.items():
        print(f"end to end, {args.end_to_end} texts: {name:36s} {r['seconds']:6.2f} s ({r['speed_vs_pipeline']:.2f}x)",
              flush=True)
    command = COMMAND + (f" --student {args.student}" if args.student else "")
    kind = cpu_kind()
    payload = {"command": command, "cpu_kind": kind, "systems": systems, "end_to_end": end_to_end,
               "end_to_end_texts": args.end_to_end, "test_texts": len(texts),
               "rounds": args.rounds, "latency_texts": latency_texts,
               "slice": args.slice, "peak_rss_mb": peak_rss_mb(),
               "load_before": load_before, "load_after": os.getloadavg()[0], "machine": machine()}
    write_results("inference", payload)
    torch_acc = systems["domainfit torch"]["accuracy"]
    lines = [f"## Inference: Banking77 test (3,080 texts, all-MiniLM-L6-v2, 2 CPU cores, {kind})", "",
             f"Command: `{command}` ({payload['machine']['cpu_model']}, {payload['machine']['date']}). Throughput "
             "over all test texts (sorted by length, padded per batch for domainfit; the pipeline as it comes, "
             f"batch 32), median of {args.rounds} rounds; in each round the "
             f"systems take turns on slices of {args.slice} texts, in a random order per slice, so that the "
             "shared machine's slow spells hit all of them (× pipeline: the median of the per-round ratios). "
             f"Single-text latency over {latency_texts:,} test texts sent one at a time. The peer is fine-tuned "
             "by HF Trainer (lr 2e-4, 5 epochs); domainfit's models come from one `domainfit train` and its "
             "exports" + (f"; the student from `domainfit train --model M --teacher M --set training.layers="
                          f"{args.student}` (M: that model)" if args.student else "") + ".", "",
             "| system | texts/s | × pipeline | p50 ms | p99 ms | accuracy | Δ vs domainfit torch |",
             "|---|---|---|---|---|---|---|"]
    for name, r in systems.items():
        delta = f"{100 * (r['accuracy'] - torch_acc):+.2f} pt" if name.startswith("domainfit") else "—"
        lines.append(f"| {name} | {r['texts_per_s']:.0f} | {r['speed_vs_pipeline']:.2f}× | {r['p50_ms']:.1f} | "
                     f"{r['p99_ms']:.1f} | {r['accuracy']:.4f} | {delta} |")
    if end_to_end:
        lines += ["", f"A whole fresh process over {args.end_to_end:,} test texts (a random sample as a CSV; start-up, "
                  "imports and loading included, written out as JSONL): `domainfit predict MODEL --data FILE --output "
                  "OUT` against a script that runs the pipeline; median of the rounds, in turns.", "",
                  "| system | seconds | × pipeline |", "|---|---|---|"]
        lines += [f"| {name} | {r['seconds']:.2f} | {r['speed_vs_pipeline']:.2f}× |" for name, r in end_to_end.items()]
    replace_section(lines[0], "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
