"""Is this working tree slower (or less accurate) than an earlier revision? Training on
Banking77 with each, taking turns, in one run.

    python benchmarks/revision_speed.py --base REV [--rounds 3] [--epochs 1] [--precision auto]

The revision is checked out into a temporary worktree. Each round trains ``domainfit train``
(defaults, ``--epochs`` epochs, no early stopping) once from the revision's source and once
from the working tree's, in alternating order, each in its own process with the same
installed libraries. A whole-run benchmark (banking77.py) runs its systems one after the
other, a quarter of an hour each, so a shared machine's slow and fast periods can move their
ratio by ±10%; here both trees share every period. Per tree: the median over rounds of the
training throughput (examples over the optimizer steps' own seconds, from ``metrics.jsonl``),
of the whole command's wall time, and the validation accuracy (the same seed and data give
the same split). Results: benchmarks/results/revision_speed.json and RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import HERE, SHARED_DATA, machine, upsert_results_row, write_results  # noqa: E402

ROOT = HERE.parent
DATA = SHARED_DATA / "banking77"


def _train(src: Path, out: Path, epochs: float, precision: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    cmd = [sys.executable, "-m", "domainfit.cli", "train", "--data", str(DATA / "train.csv"), "--output", str(out),
           "--precision", precision, "--set", f"training.epochs={epochs}",
           "--set", "training.early_stopping_patience=0", "--overwrite"]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    manifest = json.loads((out / "domainfit.json").read_text(encoding="utf-8"))
    examples = seconds = 0.0
    previous = 0
    for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if "examples_per_s" in record:  # a window of steps since the previous training record
            n = (record["step"] - previous) * manifest["config"]["training"]["batch_size"]
            examples, seconds, previous = examples + n, seconds + n / record["examples_per_s"], record["step"]
    return {"wall_s": wall, "examples_per_s": examples / seconds, "steps": manifest["training"]["steps"],
            "val_accuracy": manifest["metrics"]["validation"]["accuracy"],
            "precision": manifest["training"]["precision"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="the earlier revision (a commit, tag or branch)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    args = ap.parse_args()
    base_rev = subprocess.run(["git", "rev-parse", "--short", args.base], cwd=ROOT, check=True, capture_output=True,
                              text=True).stdout.strip()
    runs: dict[str, list[dict]] = {"base": [], "tree": []}
    with tempfile.TemporaryDirectory() as tmp:
        worktree = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.base], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            sources = {"base": worktree / "src", "tree": ROOT / "src"}
            for n in range(args.rounds):
                order = ["base", "tree"] if n % 2 == 0 else ["tree", "base"]
                for name in order:
                    result = _train(sources[name], Path(tmp) / f"{name}-model", args.epochs, args.precision)
                    runs[name].append(result)
                    print(f"round {n + 1} {name}: {result['examples_per_s']:.1f} ex/s, wall {result['wall_s']:.0f} s, "
                          f"val accuracy {result['val_accuracy']:.4f}", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, capture_output=True)
    summary = {name: {key: statistics.median(r[key] for r in rs) for key in ("examples_per_s", "wall_s", "val_accuracy")}
               for name, rs in runs.items()}
    ratio = summary["tree"]["examples_per_s"] / summary["base"]["examples_per_s"]
    command = (f"python benchmarks/revision_speed.py --base {args.base} --rounds {args.rounds} --epochs {args.epochs:g}"
               f" --precision {args.precision}")
    write_results(f"revision_speed_{args.precision}", {
        "base": base_rev, "runs": runs, "median": summary, "throughput_tree_over_base": ratio,
        "precision": runs["tree"][0]["precision"], "machine": machine(), "command": command})
    upsert_results_row(
        "Training speed against an earlier revision (Banking77, same run, taking turns)",
        f"| {base_rev} vs working tree ({runs['tree'][0]['precision']}) ",
        "| revisions (precision) | rounds | base ex/s | tree ex/s | tree / base | base wall s | tree wall s | "
        "val accuracy base / tree | command |\n|---|---|---|---|---|---|---|---|---|",
        f"| {base_rev} vs working tree ({runs['tree'][0]['precision']}) | {args.rounds} | "
        f"{summary['base']['examples_per_s']:.1f} | {summary['tree']['examples_per_s']:.1f} | {ratio:.3f} | "
        f"{summary['base']['wall_s']:.0f} | {summary['tree']['wall_s']:.0f} | "
        f"{summary['base']['val_accuracy']:.4f} / {summary['tree']['val_accuracy']:.4f} | `{command}` |")
    print(json.dumps({"median": summary, "throughput_tree_over_base": ratio}, indent=2))


if __name__ == "__main__":
    main()
