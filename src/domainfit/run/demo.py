"""``domainfit demo``: the whole path on the built-in customer-service sample data."""

from __future__ import annotations

from pathlib import Path

from ..data import sample_data_path
from ..core.ui import say

__all__ = ["run_demo"]

EXAMPLES = [
    "I lost my card yesterday, what should I do?",
    "my parcel still hasn't shown up",
    "can I get my money back for this order",
    "我要取消这个订单",
]


def run_demo(output: Path, model: str = "default", overwrite: bool = True) -> Path:
    """Train on the sample intents, evaluate on the held-out sample, show predictions."""
    from .train import train

    say("[bold]domainfit demo[/]: customer-service intents (built-in sample data)")
    say(f"  train: {sample_data_path('train')}\n  test:  {sample_data_path('test')}")
    result = train(data=sample_data_path("train"), eval_data=sample_data_path("test"), output=str(output),
                   model=model, overwrite=overwrite)
    metrics = result.eval_metrics or {}
    say(f"\n[green]Model saved to[/] {result.path}")
    say(f"Test accuracy [bold]{metrics.get('accuracy', float('nan')):.3f}[/], "
        f"macro-F1 [bold]{metrics.get('macro_f1', float('nan')):.3f}[/] on {metrics.get('n')} held-out examples")
    predictor = result.predictor
    say("\nA few predictions:")
    for text, pred in zip(EXAMPLES, predictor.predict(EXAMPLES)):
        say(f"  {text!r:55} → [bold]{pred['label']}[/] ({pred['score']:.2f})")
    say(f"\nReport: {result.path / 'report' / 'report.md'}")
    say(f"Try:    domainfit predict {result.path} --data new.csv --output predictions.jsonl")
    return result.path
