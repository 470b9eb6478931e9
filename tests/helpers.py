"""Small helpers shared by tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, timeout: float = 300, env: dict | None = None, cwd: Path | None = None,
            unset: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run ``python -m domainfit.cli ARGS`` (in ``cwd``, without the variables ``unset``) and
    capture its output."""
    full_env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT / "src"), **(env or {}))
    for name in unset:
        full_env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "domainfit.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=cwd)


def fast_settings(**extra) -> dict:
    """Training settings that make the tiny model learn in a few seconds."""
    settings = {"training.epochs": 10, "training.batch_size": 8, "training.learning_rate": 3e-3,
                "training.head_learning_rate": 1e-2, "training.early_stopping_patience": 0,
                "training.warmup_ratio": 0.0, "training.freeze_embeddings": False}
    settings.update(extra)
    return settings


def write_task_data(tmp_path: Path, task: str) -> Path:
    """36 rows of three learnable groups as JSONL, labelled for ``task`` (classification,
    multilabel with ``a|b`` labels, or regression)."""
    import json

    rows = []
    for i, text in enumerate(["where is my card", "card not arrived yet", "when will my card arrive",
                              "refund my order", "money back please", "i want a refund",
                              "forgot my password", "reset password", "can not login"] * 4):
        group = i % 9 // 3
        label = {"classification": ["card", "refund", "password"][group],
                 "multilabel": ["card|urgent", "refund", "password|urgent"][group],
                 "regression": str([1.5, 4.0, 7.5][group])}[task]
        rows.append({"text": text, "label": label})
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


NAMES = ["anna", "paul", "maria", "peter"]
PLACES = ["oslo", "paris", "rome", "london"]


def write_ner_data(tmp_path: Path, name: str = "ner.jsonl", copies: int = 1) -> Path:
    """JSONL tokens + BIO tags: a person and a place in two sentence shapes (learnable by the tiny BERT)."""
    import json

    rows = []
    for _ in range(copies):
        for person in NAMES:
            for place in PLACES:
                rows.append({"tokens": [person, "lives", "in", place], "tags": ["B-PER", "O", "O", "B-LOC"]})
                rows.append({"tokens": ["my", "card", "is", "in", place, "with", person],
                             "tags": ["O", "O", "O", "O", "B-LOC", "O", "B-PER"]})
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


TOPICS = {
    "card": (["where is my card", "card not arrived", "when will my card arrive", "my card is lost"],
             "the card arrives in a week"),
    "refund": (["i want a refund", "money back please", "refund my order", "how to get money back"],
               "refund money back to order"),
    "password": (["forgot my password", "reset password", "can not login", "password reset help"],
                 "reset the password to login"),
    "fee": (["what is the fee", "why a charge", "exchange rate fee", "atm fee charge"],
            "fee and charge for exchange"),
}


def write_retrieval_data(tmp_path: Path, copies: int = 2) -> tuple[Path, Path]:
    """(query, positive) pairs as JSONL and the corpus (id, text) as CSV."""
    import json

    rows = [{"query": q, "positive": doc} for _ in range(copies) for queries, doc in TOPICS.values() for q in queries]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    corpus = tmp_path / "corpus.csv"
    corpus.write_text("id,text,topic\n" + "".join(f"d-{t},{doc},{t}\n" for t, (_, doc) in TOPICS.items()),
                      encoding="utf-8")
    return pairs, corpus


def write_pair_data(tmp_path: Path, kind: str = "classes") -> Path:
    """Sentence pairs: does the document answer the query? ``classes`` labels yes/no,
    ``probability`` 1/0, ``score`` 0–5. Matching pairs are repeated 3 times (balanced)."""
    import json

    rows = []
    for topic, (queries, _) in TOPICS.items():
        for q in queries:
            for other, (_, doc) in TOPICS.items():
                match = topic == other
                label = {"classes": "yes" if match else "no", "probability": int(match),
                         "score": 4.5 if match else 0.5}[kind]
                rows += [{"a": q, "b": doc, "label": label}] * (3 if match else 1)
    path = tmp_path / f"pairs-{kind}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@contextlib.contextmanager
def running_app(app):
    """Serve an ASGI app with uvicorn on a free loopback port (a real server, in a thread,
    configured as ``domainfit serve`` configures it); yields its base URL."""
    import socket
    import threading
    import time

    import uvicorn

    from domainfit.serving.run import uvicorn_config

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


# Per method: options small enough for the tiny BERT that also reach the less common code paths
# (projection, text initialisation, Houlsby placement).
METHOD_OPTIONS = {
    "full": {},
    "lora": {"r": 4},
    "adalora": {"init_r": 4, "target_r": 2},
    "adapter": {"placement": "houlsby"},
    "bitfit": {},
    "ia3": {},
    "prefix": {"num_virtual_tokens": 4, "prefix_projection": True, "encoder_hidden_size": 16},
    "prompt": {"num_virtual_tokens": 4, "init": "text", "init_text": "where is my card"},
    "fewshot": {},
    "zeroshot": {},
}
# What a method that stores only what it trained may store besides the head and the buffers.
STORED = {
    "lora": lambda k: ".lora_A." in k or ".lora_B." in k,
    "adalora": lambda k: any(f".{x}." in k for x in ("lora_A", "lora_B", "lora_E")),
    "adapter": lambda k: ".adapters." in k or ".LayerNorm." in k,
    "bitfit": lambda k: k.endswith(".bias"),
    "ia3": lambda k: ".ia3_l." in k,
    "prefix": lambda k: k.startswith("encoder.prompt_encoder."),
    "prompt": lambda k: k.startswith("encoder.prompt_encoder."),
    "zeroshot": lambda k: False,
}


def headless_chromium(*flags: str, browser_log: bool = False):
    """A selenium driver for Debian's Chromium in headless mode (extra command-line ``flags``;
    ``browser_log`` keeps the console log for ``driver.get_log("browser")``); the test is
    skipped where selenium, chromium or chromedriver is missing."""
    import shutil

    import pytest

    webdriver = pytest.importorskip("selenium.webdriver")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not browser or not driver_path:
        pytest.skip("Chromium and chromedriver are not installed (make browser installs Debian's chromium and "
                    "chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", *flags):
        options.add_argument(flag)
    if browser_log:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=options)
