"""How fast the command line answers: ``domainfit --help`` against ``python -c pass``.

    python benchmarks/cli_startup.py [--runs 30]

Both run as fresh processes, alternating, so that the machine's slow spells hit both alike;
the figure is the median wall time of each and their difference (the command line's own
start-up). ``import domainfit.cli`` must not load torch: the script also checks which heavy
libraries a bare import of the command line loads. Results: benchmarks/results/cli_startup.json
and a row in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, upsert_results_row, write_results  # noqa: E402

COMMAND = "python benchmarks/cli_startup.py"
HEAVY = ("torch", "transformers", "numpy", "pandas", "fastapi", "sqlalchemy", "onnxruntime")


def _time(cmd: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    bare = [sys.executable, "-c", "pass"]
    cli = [sys.executable, "-m", "domainfit.cli", "--help"]
    for cmd in (bare, cli):  # warm the file cache
        _time(cmd, env)
    times: dict[str, list[float]] = {"python -c pass": [], "domainfit --help": []}
    for _ in range(args.runs):
        times["python -c pass"].append(_time(bare, env))
        times["domainfit --help"].append(_time(cli, env))
    probe = ("import sys, json, domainfit.cli; "
             f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                                       check=True).stdout)
    medians = {k: statistics.median(v) for k, v in times.items()}
    result = {"runs": args.runs, "median_s": medians, "p90_s": {k: sorted(v)[int(0.9 * len(v))] for k, v in times.items()},
              "cli_own_s": medians["domainfit --help"] - medians["python -c pass"],
              "heavy_modules_loaded_by_import": loaded, "machine": machine(torch_info=False), "command": COMMAND}
    write_results("cli_startup", result)
    upsert_results_row(
        "Command-line start-up", "| domainfit --help ",
        "| what | median s | p90 s | python -c pass, median s | own s | heavy modules on import | command |\n"
        "|---|---|---|---|---|---|---|",
        f"| domainfit --help | {medians['domainfit --help']:.3f} | {result['p90_s']['domainfit --help']:.3f} | "
        f"{medians['python -c pass']:.3f} | {result['cli_own_s']:.3f} | {', '.join(loaded) or 'none'} | "
        f"`{COMMAND}` |")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
