"""Monitoring benchmark (issue 21): sentiment accuracy, alerting on a seeded stream, and
end-to-end throughput.

    python benchmarks/monitoring.py                       # everything (trains the bundle if missing)
    python benchmarks/monitoring.py --part alerts --seed 1   # one part; seed 1 is for development

Parts:

* ``sentiment``: the bundle (``recipes/finance_monitoring.yaml`` on Financial PhraseBank,
  the default encoder) on PhraseBank's test split, all rows and all-agree rows, with the
  int8 copy that scores the stream and with the trained fp32 model. Target: accuracy ≥ 0.86
  on all rows.
* ``alerts``: the stream of ``monitoring_stream.py`` (30 days, 40 companies, 6 injected
  negative surges) replayed through ``domainfit app monitor ingest --replay`` with the
  bundle's default rules (sentences that name a listed company are left out, so that every
  mention is one the generator placed); an alert is right when it names a surging company within its
  surge or the two windows after; precision, recall and median delay (windows from the
  surge's start to the end of the alert's window). Then the same stream with 30% reprints:
  it must give no alert the clean stream does not. Targets: precision ≥ 0.9, recall ≥ 0.9,
  median delay ≤ 2 windows, no extra alerts. The default rules were set on seed 1; the
  reported run is seed 0.
* ``throughput``: a long stream (``--docs``, default 1,000,000; new stories of real
  sentences' lengths and 30% reprints, see ``monitoring_stream.load_stream``) through the
  whole pipeline (read → check → link → de-duplicate → score with the int8 copy; a reprint
  takes its story's scores → store → aggregate → alert), timed end to end, with the resident
  memory every 50,000 documents. Target: ≥ 400 documents/s on 2 cores, memory flat.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import HERE, SHARED_DATA, machine, replace_section, write_results  # noqa: E402
from monitoring_stream import HOUR, build_stream, load_stream, read_companies, read_sentences  # noqa: E402

ROOT = HERE.parent
WORK = HERE / "work" / "monitor"
BUNDLE = WORK / "finance-monitor"
RESULTS = HERE / "results" / "monitoring.json"


def ensure_bundle() -> Path:
    if (BUNDLE / "bundle.json").is_file():
        return BUNDLE
    from domainfit.apps.monitor import load_recipe, train_bundle

    os.environ.setdefault("DOMAINFIT_DATA", str(SHARED_DATA))
    WORK.mkdir(parents=True, exist_ok=True)
    train_bundle(load_recipe(ROOT / "recipes" / "finance_monitoring.yaml"), BUNDLE)
    return BUNDLE


def part_sentiment(bundle: Path) -> dict:
    import csv

    from domainfit.apps.monitor import evaluate_bundle

    with (SHARED_DATA / "financial_phrasebank" / "test.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    agree = [r for r in rows if r["agreement"] == "100"]
    out = {}
    for scorer in ("stream", "model"):
        for name, part in (("all", rows), ("all_agree", agree)):
            m = evaluate_bundle(bundle, [{"text": r["text"], "label": r["label"]} for r in part], scorer=scorer)
            out[f"{scorer}_{name}"] = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "rows": m["rows"],
                                       "scorer": m["scorer"]}
            print(f"sentiment {scorer:6s} {name:9s} accuracy {m['accuracy']:.4f} macro_f1 {m['macro_f1']:.4f}",
                  flush=True)
    return out


def _replay(bundle: Path, docs: list[dict], db: Path) -> tuple[list[dict], float]:
    """Ingest ``docs`` with ``--replay`` through the command line's own functions; the alerts."""
    from domainfit.apps.monitor import Monitor
    from domainfit.apps.monitor.ingest import RecordSource, run_ingest

    monitor = Monitor(bundle, f"sqlite:///{db}", explain=False)
    started = time.perf_counter()
    run_ingest(monitor, RecordSource(docs), replay=True, progress_every=10 ** 9)
    seconds = time.perf_counter() - started
    alerts = monitor.store.alerts(limit=100_000)
    monitor.close()
    return alerts, seconds


def _judge(alerts: list[dict], truth: list[dict], window: int = HOUR) -> dict:
    firing = [a for a in alerts if a["state"] == "firing"]
    matched, delays = [], {}
    for a in firing:
        hit = next((t for t in truth if t["entity"] == a["entity"]
                    and t["start"] <= a["window_start_epoch"] <= t["end"] + 2 * window), None)
        matched.append(hit is not None)
        if hit is not None:
            delay = (a["window_start_epoch"] + window - hit["start"]) / window
            delays[hit["entity"]] = min(delays.get(hit["entity"], delay), delay)
    precision = sum(matched) / len(firing) if firing else 0.0
    recall = len(delays) / len(truth) if truth else 0.0
    return {"alerts": len(firing), "right": sum(matched), "precision": precision, "recall": recall,
            "median_delay_windows": statistics.median(delays.values()) if delays else None,
            "false": [{k: a[k] for k in ("rule", "entity", "window_start", "value", "score")}
                      for a, ok in zip(firing, matched) if not ok],
            "right_alerts": [{k: a[k] for k in ("rule", "entity", "window_start", "value", "score")}
                             for a, ok in zip(firing, matched) if ok],
            "missed": [t["entity"] for t in truth if t["entity"] not in delays]}


def _unlinked(sentences: list[tuple[str, str]], bundle: Path) -> list[tuple[str, str]]:
    """The sentences that name none of the bundle's companies (PhraseBank's Finnish news names
    Nokia, UPM, Stora Enso...): in the stream, every company mention is then one the generator
    put there, so the ground truth knows every surge."""
    from domainfit.apps.monitor import EntityLinker

    linker = EntityLinker.from_dict(json.loads((bundle / "entities.json").read_text(encoding="utf-8")))
    return [s for s in sentences if not linker.link(s[0])]


def part_alerts(bundle: Path, seed: int) -> dict:
    sentences = _unlinked(read_sentences(SHARED_DATA / "financial_phrasebank" / "test.csv"), bundle)
    companies = read_companies(ROOT / "recipes" / "finance_entities.csv")
    out = {"seed": seed}
    keys = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, share in (("clean", 0.0), ("reprints_30", 0.3)):
            stream = build_stream(sentences, companies, reprint_share=share, seed=seed)
            alerts, seconds = _replay(bundle, stream.documents, Path(tmp) / f"{name}.db")
            judged = _judge(alerts, stream.surges)
            keys[name] = {(a["rule"], a["entity"], a["window_start_epoch"]) for a in alerts if a["state"] == "firing"}
            out[name] = {"documents": len(stream.documents), "reprints": stream.reprints, "seconds": round(seconds, 1),
                         "surges": [{k: t[k] for k in ("entity", "start", "end")} for t in stream.surges], **judged}
            print(f"alerts {name}: {len(stream.documents)} documents, {judged['alerts']} alerts, precision "
                  f"{judged['precision']:.3f}, recall {judged['recall']:.3f}, median delay "
                  f"{judged['median_delay_windows']} windows ({seconds:.0f} s)", flush=True)
    def unmatched(mine: set, theirs: set) -> list:
        """Alerts of ``mine`` with no alert of the same rule and company within two windows in ``theirs``."""
        return sorted(a for a in mine if not any(b[:2] == a[:2] and abs(b[2] - a[2]) <= 2 * HOUR for b in theirs))

    extra = unmatched(keys["reprints_30"], keys["clean"])
    out["extra_alerts_with_reprints"] = len(extra)
    out["missing_alerts_with_reprints"] = len(unmatched(keys["clean"], keys["reprints_30"]))
    out["same_windows_with_reprints"] = len(keys["clean"] & keys["reprints_30"])
    out["extra"] = [list(a) for a in extra]
    return out


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def part_throughput(bundle: Path, docs: int, seed: int) -> dict:
    """``docs`` documents over 30 days (``monitoring_stream.load_stream``: new stories of real
    sentences' lengths, 30% reprints) through the whole pipeline, read from a JSONL file as
    ``ingest --source FILE --replay`` does; the resident memory every 50,000 documents."""
    from domainfit.apps.monitor import Monitor
    from domainfit.apps.monitor.ingest import FileSource, run_ingest

    sentences = read_sentences(SHARED_DATA / "financial_phrasebank" / "test.csv")
    companies = read_companies(ROOT / "recipes" / "finance_entities.csv")
    memory = []
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "stream.jsonl"
        with source.open("w", encoding="utf-8") as fh:
            for d in load_stream(sentences, companies, documents=docs, seed=seed):
                fh.write(json.dumps(d) + "\n")
        monitor = Monitor(bundle, f"sqlite:///{Path(tmp) / 'throughput.db'}", explain=False)
        started = time.perf_counter()

        class Watched(FileSource):
            seen = 0

            def batches(self):
                for batch, skipped in super().batches():
                    before = Watched.seen // 50_000
                    Watched.seen += len(batch)
                    if Watched.seen // 50_000 > before:
                        elapsed = time.perf_counter() - started
                        memory.append({"documents": Watched.seen, "rss_mb": round(_rss_mb(), 1),
                                       "seconds": round(elapsed, 1)})
                        print(f"  {Watched.seen:,} documents, {memory[-1]['rss_mb']} MiB, "
                              f"{Watched.seen / elapsed:.0f}/s", flush=True)
                    yield batch, skipped

        totals = run_ingest(monitor, Watched(source), replay=True, progress_every=10 ** 9)
        seconds = time.perf_counter() - started
        reprints = sum(d["reprint"] for d in monitor.store.documents(limit=10 ** 9)) if docs <= 200_000 else None
        monitor.close()
    later = [m["rss_mb"] for m in memory if m["documents"] >= docs / 4]
    return {"documents": totals["received"], "stored": totals["stored"], "alerts": totals["alerts"],
            "reprints_found": reprints, "seconds": round(seconds, 1),
            "documents_per_second": round(totals["received"] / seconds, 1),
            "scorer": json.loads((bundle / "bundle.json").read_text())["scorer"]["path"],
            "memory": memory, "rss_growth_after_first_quarter_mb": round(max(later) - min(later), 1) if later else None}


def _section(result: dict) -> str:
    lines = ["## Monitoring (issue 21)", "",
             "Bundle: `DOMAINFIT_DATA=$PWD/../shared/data domainfit app monitor train recipes/finance_monitoring.yaml` "
             f"(Financial PhraseBank, the default encoder). CPU: {result['machine'].get('cpu_model', '?')} "
             f"({', '.join(result['machine'].get('instruction_sets', []))}), {result['machine']['cpu_count']} cores, "
             f"{result['machine'].get('threads')} threads.", ""]
    s = result.get("sentiment")
    if s:
        lines += [f"Command: `{s['command']}`.", "",
                  "| sentiment (PhraseBank test) | accuracy | macro-F1 | rows |", "|---|---|---|---|"]
        for key, label in (("stream_all", "int8 copy (scores the stream), all rows"),
                           ("stream_all_agree", "int8 copy, all-agree rows"),
                           ("model_all", "fp32 model, all rows"), ("model_all_agree", "fp32 model, all-agree rows")):
            if key in s:
                lines.append(f"| {label} | {s[key]['accuracy']:.4f} | {s[key]['macro_f1']:.4f} | {s[key]['rows']} |")
        lines.append("")
    a = result.get("alerts")
    if a:
        lines += [f"Alerting (`{a['command']}`): seed {a['seed']}, 30 days, 40 companies, 6 negative surges; the "
                  "default rules (set on seeds 1-3):", "",
                  "| stream | documents | alerts | precision | recall | median delay (windows) | seconds |",
                  "|---|---|---|---|---|---|---|"]
        for key in ("clean", "reprints_30"):
            r = a[key]
            lines.append(f"| {key} | {r['documents']} | {r['alerts']} | {r['precision']:.3f} | {r['recall']:.3f} | "
                         f"{r['median_delay_windows']} | {r['seconds']} |")
        lines += ["", f"With 30% reprints: {a['extra_alerts_with_reprints']} extra alerts and "
                      f"{a['missing_alerts_with_reprints']} missing (no alert of the same rule and company within two "
                      f"windows in the other stream); {a['same_windows_with_reprints']} of "
                      f"{a['clean']['alerts']} in the very same window.", ""]
    t = result.get("throughput")
    if t:
        lines += [f"Throughput (`{t['command']}`): {t['documents']:,} documents end to end in {t['seconds']} s = "
                  f"**{t['documents_per_second']} documents/s** (scorer `{t['scorer']}`); resident memory grew "
                  f"{t['rss_growth_after_first_quarter_mb']} MiB after the first quarter of the stream.", ""]
    if s and a and t:
        ok = lambda good: "met" if good else "**not met**"  # noqa: E731
        clean = a["clean"]
        lines += ["Targets: sentiment accuracy ≥ 0.86 on all rows: "
                  f"{ok(s['stream_all']['accuracy'] >= 0.86)}; alert precision ≥ 0.9, recall ≥ 0.9, median delay ≤ 2 "
                  f"windows: {ok(clean['precision'] >= 0.9 and clean['recall'] >= 0.9 and (clean['median_delay_windows'] or 9) <= 2)}"
                  f"; no extra alerts with reprints: {ok(a['extra_alerts_with_reprints'] == 0)}; ≥ 400 documents/s: "
                  f"{ok(t['documents_per_second'] >= 400)} (the int8 model is most of the time: alone it scores about "
                  "300 texts of this length a second on these 2 AVX2 cores; a reprint takes its story's scores).", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["all", "sentiment", "alerts", "throughput"], default="all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--docs", type=int, default=1_000_000)
    args = parser.parse_args()
    bundle = ensure_bundle()
    result = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    result["machine"] = machine()
    command = "python benchmarks/monitoring.py --part {}" + (f" --seed {args.seed}" if args.seed else "")
    if args.part in ("all", "sentiment"):
        result["sentiment"] = {**part_sentiment(bundle), "command": command.format("sentiment")}
    if args.part in ("all", "alerts"):
        result["alerts"] = {**part_alerts(bundle, args.seed), "command": command.format("alerts")}
    if args.part in ("all", "throughput"):
        result["throughput"] = {**part_throughput(bundle, args.docs, args.seed),
                                "command": command.format("throughput") + f" --docs {args.docs}"}
    if args.seed:  # development seeds are kept apart from the recorded results
        dev = WORK / f"dev-seed{args.seed}.json"
        dev.write_text(json.dumps(result, indent=1, default=str) + "\n", encoding="utf-8")
        print(f"development run: {dev}")
    else:
        write_results("monitoring", result)
        replace_section("## Monitoring (issue 21)", _section(result))


if __name__ == "__main__":
    main()
