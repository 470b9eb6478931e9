"""Load on the HTTP server: concurrent clients, mixed batch sizes, a promotion in the middle.

    python benchmarks/serve_load.py [--clients 64] [--seconds 60] [--max-wait-ms 5] [--client wrk|asyncio]
    python benchmarks/serve_load.py --base REV [--rounds 3] [--model DIR]   # this tree against REV
    python benchmarks/serve_load.py --scenario abandon [--base REV] [--model DIR]
    python benchmarks/serve_load.py --scenario log [--rounds 3]   # the prediction log's cost

Starts ``domainfit serve`` on loopback (a registry with the int8 Banking77 model of
benchmarks/inference.py as version 1 and the same model again as version 2), then runs
``--clients`` concurrent connections for ``--seconds``: each sends Banking77 test texts in
batches of 1, 2, 4, 8 or 16 (uniformly) back to back. Half-way through, version 2 is
promoted through the admin endpoint. Reports requests/s, texts/s (from the server's own
Prometheus counter), p50/p99 request latency, the error count, the versions seen, and
texts/s as a share of the offline int8 throughput measured by benchmarks/inference.py
(results/inference.json).

``--scenario abandon`` is the storm an audit found: ``--clients`` (default 60) clients each
send 256 texts and give up after 1 s; then one client sends one text and times its answer.
It runs against this tree and, with ``--base REV``, against the server of revision REV
(checked out into a temporary worktree) in the same run, each on a fresh server with the
same model. Before backpressure, the fresh request waited behind every abandoned text.

``--scenario log`` runs the load on a server without the prediction log and on one with
``--log-predictions --log-texts`` (every prediction written, with its text: the dearest
setting), taking turns for ``--rounds`` rounds, and reports the throughput ratio (medians)
and how many rows the log holds against the texts served.

The load generator shares the 2 cores with the server. ``wrk`` (Debian package ``wrk``; a
C program, the default when installed) costs little CPU; the ``asyncio`` client (httpx) is
pure Python and takes a large share of the cores itself, so its figure says more about
the client than about the server.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import HERE, RESULTS_DIR, SHARED_DATA, cli_server, machine, read_csv, replace_section, write_results  # noqa: E402

COMMAND = "python benchmarks/serve_load.py"
KEY = "load-test-key"


async def _client(http, url: str, texts: list[str], stop: float, rng: random.Random, out: dict) -> None:
    while time.perf_counter() < stop:
        size = rng.choice((1, 2, 4, 8, 16))
        start = rng.randrange(len(texts) - size)
        t0 = time.perf_counter()
        try:
            r = await http.post(url, json={"texts": texts[start:start + size], "top_k": 1})
            ok = r.status_code == 200
            version = r.json().get("version") if ok else None
        except Exception as exc:  # a dropped connection counts as an error
            ok, version = False, None
            out["exceptions"].append(type(exc).__name__)
        out["latency"].append(time.perf_counter() - t0)
        out["requests"] += 1
        if ok:
            out["texts"] += size
            out["versions"][version] = out["versions"].get(version, 0) + 1
        else:
            out["errors"] += 1


async def _load(base: str, name: str, texts: list[str], clients: int, seconds: float) -> dict:
    import httpx

    out = {"requests": 0, "texts": 0, "errors": 0, "latency": [], "versions": {}, "exceptions": []}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        started = time.perf_counter()
        stop = started + seconds

        async def promote():
            await asyncio.sleep(seconds / 2)
            r = await http.post(f"{base}/v1/admin/registry/{name}/promote", json={"version": 2},
                                headers={"x-api-key": KEY})
            out["promotion_status"] = r.status_code
            out["promoted_at_s"] = time.perf_counter() - started

        rng = random.Random(0)
        tasks = [_client(http, f"{base}/v1/models/{name}/predict", texts, stop, random.Random(rng.random()), out)
                 for _ in range(clients)]
        await asyncio.gather(promote(), *tasks)
        out["seconds"] = time.perf_counter() - started
    return out


def _served_texts(base: str, name: str) -> float:
    """Texts the server has predicted for ``name`` (its Prometheus counter)."""
    import httpx

    text = httpx.get(f"{base}/metrics").text
    found = re.search(r'^domainfit_predicted_items_total\{model="%s"\} ([0-9.e+]+)$' % re.escape(name), text, re.M)
    return float(found.group(1)) if found else 0.0


_WRK_SCRIPT = r"""
local bodies = {%(bodies)s}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok, bad = 0, 0; versions = {} end
request = function()
  return wrk.format("POST", "%(path)s", {["Content-Type"] = "application/json"}, bodies[math.random(#bodies)])
end
response = function(status, headers, body)
  if status ~= 200 then bad = bad + 1; return end
  ok = ok + 1
  local v = string.match(body, '"version":%%s*(%%d+)')
  if v then versions[v] = (versions[v] or 0) + 1 end
end
done = function(summary, latency, requests)
  local ok_all, bad_all, vs = 0, 0, {}
  for _, t in ipairs(threads) do
    ok_all = ok_all + t:get("ok"); bad_all = bad_all + t:get("bad")
    for k, n in pairs(t:get("versions")) do vs[k] = (vs[k] or 0) + n end
  end
  local e = summary.errors
  io.write(string.format("RESULT requests=%%d ok=%%d bad=%%d socket_errors=%%d duration_us=%%d p50_us=%%d p99_us=%%d\n",
    summary.requests, ok_all, bad_all, e.connect + e.read + e.write + e.timeout, summary.duration,
    latency:percentile(50), latency:percentile(99)))
  for k, n in pairs(vs) do io.write(string.format("VERSION %%s %%d\n", k, n)) end
end
"""


def _wrk_load(base: str, name: str, texts: list[str], clients: int, seconds: float, tmp: Path) -> dict:
    """The load from ``wrk``: pre-built request bodies (1-16 texts), a promotion half-way."""
    import threading

    import httpx

    rng = random.Random(0)
    bodies = []
    for _ in range(1000):
        size = rng.choice((1, 2, 4, 8, 16))
        start = rng.randrange(len(texts) - size)
        body = json.dumps({"texts": texts[start:start + size], "top_k": 1})
        if "]==]" not in body:
            bodies.append("[==[" + body + "]==]")
    script = tmp / "load.lua"
    script.write_text(_WRK_SCRIPT % {"bodies": ",".join(bodies), "path": f"/v1/models/{name}/predict"})
    out: dict = {}

    def promote():
        time.sleep(seconds / 2)
        r = httpx.post(f"{base}/v1/admin/registry/{name}/promote", json={"version": 2}, headers={"x-api-key": KEY})
        out["promotion_status"] = r.status_code

    promoter = threading.Thread(target=promote)
    promoter.start()
    done = subprocess.run(["wrk", "-t", "2", "-c", str(clients), "-d", f"{seconds:g}s", "--timeout", "30s", "-s",
                           str(script), base], capture_output=True, text=True)
    promoter.join()
    found = re.search(r"RESULT (.*)", done.stdout)
    if done.returncode != 0 or not found:
        sys.exit(f"wrk failed: {done.stdout[-2000:]} {done.stderr[-2000:]}")
    fields = {k: int(v) for k, v in (item.split("=") for item in found.group(1).split())}
    return {**out, "requests": fields["requests"], "errors": fields["bad"] + fields["socket_errors"],
            "seconds": fields["duration_us"] / 1e6, "p50_ms": fields["p50_us"] / 1000,
            "p99_ms": fields["p99_us"] / 1000, "exceptions": [],
            "versions": {int(v): int(n) for v, n in re.findall(r"VERSION (\d+) (\d+)", done.stdout)}}


def _storm(base: str, name: str, texts: list[str], clients: int, give_up: float = 1.0) -> dict:
    """``clients`` requests of 256 texts that give up after ``give_up`` s, then one fresh text."""
    import concurrent.futures

    import httpx

    body = {"texts": (texts * (256 // len(texts) + 1))[:256]}

    def impatient(n: int) -> str:
        try:
            return str(httpx.post(f"{base}/v1/models/{name}/predict", json=body, timeout=give_up).status_code)
        except httpx.TimeoutException:
            return "gave up"

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        outcomes = dict(collections.Counter(pool.map(impatient, range(clients))))
    t0 = time.perf_counter()
    r = httpx.post(f"{base}/v1/models/{name}/predict", json={"texts": [texts[0]]}, timeout=600)
    return {"storm": outcomes, "fresh_status": r.status_code, "fresh_seconds": time.perf_counter() - t0,
            "fresh_retry_after": r.headers.get("retry-after")}


def abandon(args, texts: list[str]) -> None:
    import subprocess

    model = Path(args.model) if args.model else HERE / "work" / "banking77-onnx-int8"
    if not (model / "domainfit.json").is_file():
        sys.exit(f"{model} is not a model folder (run benchmarks/inference.py, or pass --model)")
    root = HERE.parent
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        # This tree as served by default, and with a queue bound too large to refuse anything,
        # so that dropping abandoned work shows on its own.
        sources = {"tree": (root / "src", []), "tree, --max-queue 1000000": (root / "src", ["--max-queue", "1000000"])}
        if args.base:
            worktree = Path(tmp) / "base"
            subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.base], cwd=root, check=True,
                           capture_output=True)
            sources[f"revision {args.base}"] = (worktree / "src", [])
        try:
            for label, (src, extra) in sources.items():
                env = dict(os.environ, PYTHONPATH=str(src))
                with cli_server(["serve", str(model), "--max-texts", "256", "--db", f"sqlite:///{Path(tmp) / 'fb.db'}",
                                 *extra], env=env, ready_seconds=120) as base:
                    runs[label] = _storm(base, model.name, texts[:256], args.clients)
                print(label, json.dumps(runs[label]))
        finally:
            if args.base:
                subprocess.run(["git", "worktree", "remove", "--force", str(Path(tmp) / "base")], cwd=root,
                               capture_output=True)
    result = {"command": f"{COMMAND} --scenario abandon" + (f" --base {args.base}" if args.base else "")
              + (f" --model {args.model}" if args.model else ""),
              "clients": args.clients, "texts_per_request": 256, "client_gives_up_after_s": 1.0,
              "model": str(model.name), "runs": runs, "machine": machine()}
    write_results("serve_abandon", result)
    rows = [f"| {label} | {', '.join(f'{k}: {v}' for k, v in sorted(r['storm'].items()))} | {r['fresh_status']} | "
            f"{r['fresh_seconds']:.2f} |" for label, r in runs.items()]
    replace_section("## Serving after clients give up (abandon storm)", "\n".join([
        "## Serving after clients give up (abandon storm)", "",
        f"Command: `{result['command']}`. {args.clients} clients each send 256 texts to `{model.name}` and give "
        "up after 1 s; then one client sends one text. Each server fresh, same model, same run; the second row "
        "takes away the queue bound, so that what remains is dropping the work of clients that left. The model "
        "only sets the pace (here any int8 MiniLM classifier: `storm-int8` was trained 1 epoch on 3,000 Banking77 "
        "rows and exported with `--quantize int8 --min-agreement 0.9`).", "",
        f"| server | the {args.clients} abandoned requests | fresh request status | fresh request seconds |",
        "|---|---|---|---|", *rows]) + "\n")


def _serve_load(args, model: Path, texts: list[str], src: Path | None = None, extra: tuple[str, ...] = ()) -> dict:
    """One load run on a fresh server (``src``: the source tree it runs from, default this one;
    ``extra``: more ``serve`` options)."""
    with tempfile.TemporaryDirectory() as tmp:
        from domainfit.stores import Registry

        registry = Registry(Path(tmp) / "registry")
        registry.add("banking77", model, stage="production")
        registry.add("banking77", model)
        env = dict(os.environ, DOMAINFIT_API_KEY=KEY, **({"PYTHONPATH": str(src)} if src else {}))
        with cli_server(["serve", str(Path(tmp) / "registry"), "--max-batch", str(args.max_batch), "--max-wait-ms",
                         str(args.max_wait_ms), "--max-texts", "64", "--db", f"sqlite:///{Path(tmp) / 'fb.db'}",
                         *extra], env=env, ready_seconds=120) as base:
            before = _served_texts(base, "banking77")
            if args.client == "wrk":
                out = _wrk_load(base, "banking77", texts, args.clients, args.seconds, Path(tmp))
            else:
                out = asyncio.run(_load(base, "banking77", texts, args.clients, args.seconds))
            out["texts"] = _served_texts(base, "banking77") - before
        if "--log-predictions" in extra:  # after the server stopped: it writes what is left on the way out
            from domainfit.stores import PredictionLog

            out["logged_rows"] = PredictionLog(f"sqlite:///{Path(tmp) / 'fb.db'}").count()
    latency = sorted(out.pop("latency")) if "latency" in out else None
    return {
        "clients": args.clients, "seconds": out["seconds"], "requests": out["requests"], "errors": out["errors"],
        "requests_per_s": out["requests"] / out["seconds"], "texts_per_s": out["texts"] / out["seconds"],
        "p50_ms": out["p50_ms"] if latency is None else 1000 * statistics.median(latency),
        "p99_ms": out["p99_ms"] if latency is None else 1000 * latency[int(0.99 * (len(latency) - 1))],
        "versions_seen": out["versions"], "promotion_status": out.get("promotion_status"),
        "exceptions": sorted(set(out["exceptions"])),
        "max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms, "client": args.client,
        **({"logged_rows": out["logged_rows"], "texts_served": out["texts"]} if "logged_rows" in out else {}),
    }


def compare_log(args, model: Path, texts: list[str]) -> None:
    """The load without and with the prediction log (every prediction, with its text), taking turns."""
    servers = {"no prediction log": (), "--log-predictions --log-texts": ("--log-predictions", "--log-texts")}
    runs: dict[str, list[dict]] = {label: [] for label in servers}
    for _ in range(args.rounds):
        for label, extra in servers.items():
            runs[label].append(_serve_load(args, model, texts, extra=extra))
            print(label, json.dumps({k: runs[label][-1].get(k) for k in ("texts_per_s", "p50_ms", "p99_ms", "errors",
                                                                          "logged_rows", "texts_served")}))
    median = {label: statistics.median(r["texts_per_s"] for r in rs) for label, rs in runs.items()}
    ratio = median["--log-predictions --log-texts"] / median["no prediction log"]
    logged = runs["--log-predictions --log-texts"]
    complete = sum(r["logged_rows"] for r in logged) / sum(r["texts_served"] for r in logged)
    command = f"{COMMAND} --scenario log --rounds {args.rounds} --seconds {args.seconds:g} --client {args.client}"
    write_results("serve_load_log", {"command": command, "model": model.name, "runs": runs,
                                     "median_texts_per_s": median, "ratio": ratio, "logged_share": complete,
                                     "machine": machine()})
    rows = [f"| {label} | {median[label]:.0f} | "
            f"{statistics.median(r['p50_ms'] for r in rs):.1f} | {statistics.median(r['p99_ms'] for r in rs):.1f} | "
            f"{sum(r['errors'] for r in rs)} |" for label, rs in runs.items()]
    m = machine()
    replace_section("## Serving with the prediction log", "\n".join([
        "## Serving with the prediction log", "",
        f"Command: `{command}`. The load of \"Serving under load\" ({args.clients} connections, 1–16 texts per "
        f"request, a promotion half-way) for {args.seconds:g} s on a fresh server each, taking turns, {args.rounds} "
        f"rounds; medians. With the log / without: **{ratio:.2f}×** throughput; the log holds {complete:.1%} of "
        f"the texts served (SQLite, same machine). CPU: {m.get('cpu_model', '?')}.", "",
        "| server | texts/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|", *rows]) + "\n")


def compare_revisions(args, model: Path, texts: list[str]) -> None:
    """The load on this tree and on ``args.base``, taking turns (``args.rounds`` each)."""
    import subprocess

    root = HERE.parent
    runs: dict[str, list[dict]] = {"tree": [], f"revision {args.base}": []}
    with tempfile.TemporaryDirectory() as tmp:
        worktree = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.base], cwd=root, check=True,
                       capture_output=True)
        try:
            for _ in range(args.rounds):
                for label, src in (("tree", root / "src"), (f"revision {args.base}", worktree / "src")):
                    runs[label].append(_serve_load(args, model, texts, src))
                    print(label, json.dumps({k: runs[label][-1][k] for k in ("texts_per_s", "p50_ms", "p99_ms",
                                                                             "errors")}))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=root, capture_output=True)
    median = {label: statistics.median(r["texts_per_s"] for r in rs) for label, rs in runs.items()}
    ratio = median["tree"] / median[f"revision {args.base}"]
    command = f"{COMMAND} --base {args.base} --rounds {args.rounds} --seconds {args.seconds:g}" + \
        (f" --model {args.model}" if args.model else "") + f" --client {args.client}"
    write_results("serve_load_revisions", {"command": command, "model": model.name, "runs": runs,
                                           "median_texts_per_s": median, "ratio": ratio, "machine": machine()})
    rows = [f"| {label} | {median[label]:.0f} | "
            f"{statistics.median(r['p50_ms'] for r in rs):.1f} | {statistics.median(r['p99_ms'] for r in rs):.1f} | "
            f"{sum(r['errors'] for r in rs)} |" for label, rs in runs.items()]
    replace_section("## Serving throughput against an earlier revision", "\n".join([
        "## Serving throughput against an earlier revision", "",
        f"Command: `{command}`. The load of the section above ({args.clients} connections, 1–16 texts per request, "
        f"a promotion half-way) for {args.seconds:g} s on each server, taking turns, {args.rounds} rounds; "
        f"medians. This tree / revision: {ratio:.2f}×.", "",
        "| server | texts/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|", *rows]) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", choices=("load", "abandon", "log"), default="load")
    ap.add_argument("--base", help="also run the server of this git revision, for comparison")
    ap.add_argument("--rounds", type=int, default=3, help="load with --base: rounds, taking turns")
    ap.add_argument("--model", help="the model folder to serve (default: the int8 model of inference.py)")
    ap.add_argument("--clients", type=int, default=None, help="concurrent clients (load: 64, abandon: 60)")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--max-batch", type=int, default=256)
    ap.add_argument("--max-wait-ms", type=float, default=5)
    ap.add_argument("--client", choices=("wrk", "asyncio"), default="wrk" if shutil.which("wrk") else "asyncio")
    args = ap.parse_args()
    texts, _ = read_csv(SHARED_DATA / "banking77" / "test.csv")
    if args.scenario == "abandon":
        args.clients = args.clients or 60
        return abandon(args, texts)
    args.clients = args.clients or 64
    model = Path(args.model) if args.model else HERE / "work" / "banking77-onnx-int8"
    if not (model / "domainfit.json").is_file():
        sys.exit(f"{model} is not a model folder (run benchmarks/inference.py, or pass --model)")
    if args.scenario == "log":
        return compare_log(args, model, texts)
    if args.base:
        return compare_revisions(args, model, texts)
    offline = json.loads((RESULTS_DIR / "inference.json").read_text())["systems"]["domainfit onnx-int8"]
    result = _serve_load(args, model, texts)
    result["offline_int8_texts_per_s"] = offline["texts_per_s"]
    result["share_of_offline"] = result["texts_per_s"] / offline["texts_per_s"]
    print(json.dumps(result, indent=2))
    write_results("serve_load", {"command": COMMAND, **result, "machine": machine()})
    lines = ["## Serving under load (Banking77 int8 model, 2 CPU cores)", "",
             f"Command: `{COMMAND}`. {args.clients} concurrent connections ({args.client}) on the same machine for "
             f"{args.seconds:g} s, "
             "batches of 1–16 texts, a promotion to version 2 half-way through; micro-batching up to "
             f"{args.max_batch} texts or {args.max_wait_ms:g} ms.", "",
             "| requests/s | texts/s | share of offline int8 | p50 ms | p99 ms | errors | versions seen |",
             "|---|---|---|---|---|---|---|",
             f"| {result['requests_per_s']:.0f} | {result['texts_per_s']:.0f} | {result['share_of_offline']:.0%} | "
             f"{result['p50_ms']:.1f} | {result['p99_ms']:.1f} | {result['errors']} | "
             f"{', '.join(f'v{k}: {v}' for k, v in sorted(result['versions_seen'].items()))} |"]
    replace_section(lines[0], "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
