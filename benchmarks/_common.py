"""Shared helpers for the benchmarks: data paths, peak memory, results files."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import platform
import resource
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED_DATA = Path(os.environ.get("DOMAINFIT_SHARED_DATA", HERE.parent.parent / "shared" / "data"))
RESULTS_DIR = HERE / "results"
RESULTS_MD = HERE / "RESULTS.md"


def read_csv(path: Path) -> tuple[list[str], list[str]]:
    """Read a text,label CSV into two lists."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [r["text"] for r in rows], [r["label"] for r in rows]


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_flags() -> dict:
    """The CPU's model name and the instruction sets that decide training and inference
    speed (AVX2, AVX-512, bf16, VNNI, AMX): ``domainfit version``'s own reading."""
    from domainfit.core.environment import cpu_features

    return cpu_features()


def machine(torch_info: bool = True) -> dict:
    """A short description of where the numbers were measured (with the CPU's instruction
    sets, and the precision ``--precision auto`` trains in on it)."""
    out = {
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        **cpu_flags(),
        "date": time.strftime("%Y-%m-%d"),
    }
    if torch_info:
        import torch

        from domainfit.training import resolve_precision

        out.update(torch=torch.__version__, threads=torch.get_num_threads(),
                   auto_precision="bf16" if resolve_precision("auto") else "fp32")
    return out


def cpu_kind(info: dict | None = None) -> str:
    """A short name for the instruction sets that decide speed here: "AVX-512 VNNI + bf16",
    "AVX-512 VNNI", "AVX2 only" (no VNNI, no bf16), or what the sets are."""
    sets = (info if info is not None else cpu_flags()).get("instruction_sets") or []
    if "avx512_vnni" in sets:
        return "AVX-512 VNNI + bf16" if "avx512_bf16" in sets else "AVX-512 VNNI"
    if "avx_vnni" in sets:
        return "AVX-VNNI"
    return "AVX2 only" if "avx2" in sets else (", ".join(sets) or "CPU not recorded")


def write_results(name: str, payload: dict) -> Path:
    """Write ``results/NAME.json``."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n", encoding="utf-8")
    return path


def upsert_results_row(section: str, key: str, header: str, row: str) -> None:
    """Put ``row`` in the table under ``## section`` of RESULTS.md (created with ``header``),
    replacing an earlier row that starts with ``key``."""
    text = RESULTS_MD.read_text(encoding="utf-8") if RESULTS_MD.exists() else "# Benchmark results\n"
    title = f"## {section}"
    if title not in text:
        text = text.rstrip("\n") + f"\n\n{title}\n\n{header}\n"
    head, _, rest = text.partition(title)
    body, sep, tail = rest.partition("\n## ")
    lines = [ln for ln in body.rstrip("\n").split("\n") if not ln.startswith(key)]
    # The row goes right after the table's last row, before any notes below the table.
    last_row = max((i for i, ln in enumerate(lines) if ln.startswith("|")), default=len(lines) - 1)
    lines.insert(last_row + 1, row)
    body = "\n".join(lines) + "\n"
    RESULTS_MD.write_text(head + title + body + (("\n## " + tail) if sep else ""), encoding="utf-8")


def replace_section(title: str, body: str) -> None:
    """Replace the ``title`` section of RESULTS.md (up to the next ``## ``) with ``body``,
    or append it."""
    text = RESULTS_MD.read_text(encoding="utf-8") if RESULTS_MD.exists() else "# Benchmark results\n"
    head, sep, rest = text.partition(title)
    if sep:
        _, sep2, tail = rest.partition("\n## ")
        text = head + body + (("\n## " + tail) if sep2 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + body
    RESULTS_MD.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def run_cached(specs: list[dict], key, results_file: Path, script: str, summary, rerun: bool = False) -> dict:
    """Run each spec as ``python SCRIPT --worker SPEC`` (its own process, so its own peak
    RSS), unless ``results_file`` already holds its ``key(spec)``; the worker prints one
    ``RESULT {json}`` line. Results are saved after every run, so an interrupted benchmark
    continues where it stopped. ``summary(result)`` is the line printed per run."""
    import subprocess
    import sys

    results = json.loads(results_file.read_text()) if results_file.exists() else {"runs": {}}
    for spec in specs:
        name = key(spec)
        if name in results["runs"] and not rerun:
            continue
        print(f"== {name}", flush=True)
        proc = subprocess.run([sys.executable, script, "--worker", json.dumps(spec)], capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            print(proc.stderr[-3000:], file=sys.stderr)
            print(f"!! {name} failed (exit {proc.returncode})", flush=True)
            continue
        results["runs"][name] = json.loads(lines[-1][len("RESULT "):])
        print("   " + summary(results["runs"][name]), flush=True)
        results_file.parent.mkdir(parents=True, exist_ok=True)
        results_file.write_text(json.dumps(results, indent=2, default=float) + "\n", encoding="utf-8")
    return results


@contextlib.contextmanager
def cli_server(args: list[str], env: dict | None = None, ready_seconds: float = 180):
    """Run ``domainfit ARGS --port P`` on a free loopback port; yield its base URL once
    ``/readyz`` answers 200; stop it afterwards."""
    import socket
    import subprocess
    import sys

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "domainfit.cli", *args, "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + ready_seconds
        while time.time() < deadline:
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        server.wait(30)
