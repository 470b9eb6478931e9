"""Small helpers shared by tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m domainfit.cli ARGS`` and capture its output."""
    full_env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT / "src"), **(env or {}))
    return subprocess.run([sys.executable, "-m", "domainfit.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env)


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
