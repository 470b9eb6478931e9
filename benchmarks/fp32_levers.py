"""fp32 training levers on Banking77, against the tuned peer, in one run.

    python benchmarks/fp32_levers.py [--freeze-layers 3,4]

For CPUs without bf16 (most laptops): the tuned ``transformers.Trainer`` peer (fp32), domainfit
with ``--precision fp32``, and the same with ``training.freeze_layers`` (the embeddings and the
lowest encoder layers fixed: the backward pass stops above them). Each runs in its own
subprocess through ``benchmarks/banking77.py``'s workers (same data, same test-set clock:
time to 92% test accuracy, the test scoring itself not counted). Results:
results/fp32_levers.json and RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, machine, replace_section, write_results  # noqa: E402
from banking77 import _worker  # noqa: E402

COMMAND = "python benchmarks/fp32_levers.py"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--freeze-layers", default="3,4", help="comma-separated layer counts, one run each")
    args = ap.parse_args()
    lr = json.loads((RESULTS_DIR / "banking77_peer_sweep.json").read_text())["best_lr"]
    common = ["--peer-epochs", "5", "--peer-lr", str(lr)]
    runs = {"peer": _worker("peer", common),
            "domainfit fp32": _worker("domainfit", common + ["--precision", "fp32"])}
    for n in (int(x) for x in args.freeze_layers.split(",") if x.strip()):
        runs[f"domainfit fp32, freeze_layers {n}"] = _worker(
            "domainfit", common + ["--precision", "fp32", "--set", f"training.freeze_layers={n}"])
    peer = runs["peer"]
    for run in runs.values():
        run["time_to_92_over_peer"] = (run["time_to_92_s"] / peer["time_to_92_s"]
                                       if run["time_to_92_s"] and peer["time_to_92_s"] else None)
    m = machine()
    write_results("fp32_levers", {"runs": runs, "machine": m, "command": COMMAND})
    rows = "\n".join(
        f"| {name} ({r['system']}) | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['wall_s']:.0f} | "
        f"{r['examples_per_s']:.0f} | {r['time_to_92_s']:.0f} | "
        f"{r['time_to_92_over_peer']:.2f}× |" if r["time_to_92_s"] else
        f"| {name} ({r['system']}) | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['wall_s']:.0f} | "
        f"{r['examples_per_s']:.0f} | never | – |" for name, r in runs.items())
    body = (f"## fp32 training levers (issue 18)\n\nCommand: `{COMMAND}`. Banking77 (test 3,080), all-MiniLM-L6-v2, "
            f"everything in fp32 (`--precision fp32`: what a CPU without bf16 runs), one run, each system in its own "
            f"process. CPU: {m.get('cpu_model', '?')} ({', '.join(m.get('instruction_sets') or [])}).\n\n"
            "| system | accuracy | macro-F1 | train s | examples/s | s to 92% | to 92% / peer |\n"
            "|---|---|---|---|---|---|---|\n" + rows + "\n")
    replace_section(body.splitlines()[0], body)
    print(body)


if __name__ == "__main__":
    main()
