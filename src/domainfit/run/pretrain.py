"""Continued pre-training: masked-language-model training of an encoder on a user's own
unlabelled text, optionally teaching its tokenizer the pieces it cannot read.

The result is a base-model folder (``config.json``, ``model.safetensors`` with the encoder
and its masked-LM head, the tokenizer, a ``README.md`` model card and ``pretrain.json``)
that ``--model BASE`` uses like any Hugging Face encoder. The run goes through the same
training loop as fine-tuning (progress, checkpoints, resumption by running the same
command again; several processes with ``torchrun``), with masked-token accuracy on a
held-out share of the texts as its validation score.

Two uses, one command:

- *domain-adaptive*: a large file or folder of the domain's text (news, tickets, notes);
- *task-adaptive*: the training texts of the task itself (labels are ignored).

With ``extend_vocab``, pieces of the text that the tokenizer reads as ``[UNK]`` (most
Chinese characters for the default English model) become tokens of their own, with new
embedding rows, before training starts, so the model can learn them.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from ..core.config import load_config
from ..core.errors import ConfigError
from ..core.io import atomic_write_text, staged_folder
from ..core.ui import escape, say
from ..core.version import __version__
from .output import check_output, clear_run_files, mark_running

__all__ = ["pretrain", "PretrainResult"]

_VALIDATION_SHARE = 0.05
_VALIDATION_MAX = 1000
_DEFAULT_PASSES = 10
RECORD = "pretrain.json"


class PretrainResult:
    """What :func:`pretrain` wrote: ``path`` (use it as ``--model``) and ``record``
    (the contents of ``pretrain.json``)."""

    def __init__(self, path: Path, record: dict):
        self.path, self.record = path, record

    def __repr__(self) -> str:
        r = self.record
        return (f"PretrainResult(path={str(self.path)!r}, steps={r['training']['steps']}, "
                f"mlm_accuracy={r['validation']['mlm_accuracy_before']:.3f}->{r['validation']['mlm_accuracy_after']:.3f}, "
                f"added_tokens={r['vocabulary']['added_tokens']})")


def pretrain(data: str | Path, output: str | Path, *, model: str = "default", text_column: str = "text",
             steps: int | None = None, passes: float | None = None, extend_vocab: bool = False,
             min_count: int = 2, max_new_tokens: int = 10_000, batch_size: int = 32, learning_rate: float = 1e-4,
             max_length: int = 128, mask_share: float = 0.15, precision: str = "auto", seed: int = 42,
             resume: str = "auto", overwrite: bool = False) -> PretrainResult:
    """Masked-LM training of ``model`` on the texts of ``data``; writes a base-model folder.

    Args:
        data: a file (CSV/TSV/JSONL/Parquet with ``text_column``, or ``.txt`` with one text
            per line) or a folder of such files.
        output: the folder to write (use it later as ``--model``).
        model: ``"default"``, a Hugging Face encoder folder or hub id, or a model folder
            domainfit trained (its encoder as trained).
        steps: optimizer steps; default ``passes`` (10) passes over the texts.
        extend_vocab: add the pieces the tokenizer reads as ``[UNK]`` (seen at least
            ``min_count`` times; the ``max_new_tokens`` most frequent) as new tokens.
        mask_share: share of the words masked per text (whole words).
        Other arguments: the optimisation (AdamW, linear warm-up and decay) and
            resumption, as in :func:`domainfit.train`.

    Returns:
        A :class:`PretrainResult`.

    Raises:
        DataError: no usable text. ConfigError: a model type without a masked-LM form, bad
            settings. DomainfitError: an output folder that holds something else.

    Example:
        >>> pretrain("reviews.csv", "reviews-base", extend_vocab=True, steps=2000)  # doctest: +SKIP
        >>> train(data="train.csv", model="reviews-base", output="my-model")       # doctest: +SKIP
    """
    from accelerate import Accelerator
    from transformers import AutoTokenizer

    from ..artifact import load_encoder
    from ..data.masking import mask_whole_words, read_texts
    from ..data.validation import unknown_pieces
    from ..modeling import resolve_model, weights_sha256
    from ..modeling.base_models import card_facts, loading_quietly
    from ..modeling.mlm import MaskedLM, MlmObjective, build_masked_lm, extend_vocabulary
    from ..modeling.predict import predict_logits
    from ..training import count_steps, fit, resolve_precision

    if steps is not None and steps < 1:
        raise ConfigError("--steps must be at least 1.")
    if not 0 < mask_share < 1:
        raise ConfigError("the masked share must be between 0 and 1.")
    started = time.perf_counter()
    out = Path(output)
    base = resolve_model(model)
    texts, fingerprint, files = read_texts(data, text_column)
    settings = {"model": base.name, "data": fingerprint, "text_column": text_column, "steps": steps,
                "passes": passes, "extend_vocab": extend_vocab, "min_count": min_count,
                "max_new_tokens": max_new_tokens, "batch_size": batch_size, "learning_rate": learning_rate,
                "max_length": max_length, "mask_share": mask_share, "precision": precision, "seed": seed}
    signature = _signature(settings)
    check_output(out, signature, resume, overwrite)
    resuming = (out / "checkpoints").exists()
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(base.path))
    with loading_quietly():
        encoder = load_encoder(base.path)
    mlm, head_is_new = build_masked_lm(encoder, base.path)
    del encoder
    pieces, unk_before = unknown_pieces(tokenizer, texts)
    added: list[str] = []
    if extend_vocab:
        if not getattr(tokenizer, "is_fast", False):
            raise ConfigError(f"{base.name}: --extend-vocab needs a fast tokenizer (tokenizer.json).")
        wanted = [p for p, n in pieces.most_common(max_new_tokens) if n >= min_count]
        count = extend_vocabulary(tokenizer, mlm, wanted)
        added = wanted[:count] if count == len(wanted) else [p for p in wanted if p in tokenizer.get_vocab()]
    unk_after = unknown_pieces(tokenizer, texts)[1] if added else unk_before
    say(f"Pre-training {escape(base.name)} on {len(texts):,} texts from {escape(str(data))} "
        f"({'a new' if head_is_new else 'its own'} masked-LM head; [UNK] share {_pct(unk_before)}"
        + (f", {len(added):,} pieces added to the vocabulary, now {_pct(unk_after)}" if extend_vocab else "")
        + ").")
    if not extend_vocab and unk_before is not None and unk_before > 0.02:
        say(f"[yellow]warning:[/] {_pct(unk_before)} of the tokens are unknown to the tokenizer; "
            "--extend-vocab teaches it the missing pieces.")

    # validation: a fixed held-out share of the texts, masked once
    order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = min(_VALIDATION_MAX, int(len(texts) * _VALIDATION_SHARE)) if len(texts) >= 40 else 0
    val_texts = [texts[i] for i in order[:n_val]]
    train_texts = [texts[i] for i in order[n_val:]]
    windows = mask_whole_words(tokenizer, train_texts, max_length=max_length, copies=1, seed=seed,
                               mask_share=mask_share)
    per_pass = math.ceil(len(windows) / batch_size)
    wanted_passes = steps / per_pass if steps is not None else (passes or _DEFAULT_PASSES)
    copies = max(1, math.ceil(wanted_passes))
    train = mask_whole_words(tokenizer, train_texts, max_length=max_length, copies=copies, seed=seed,
                             mask_share=mask_share) if copies > 1 else windows
    val = mask_whole_words(tokenizer, val_texts, max_length=max_length, copies=1, seed=seed + 1,
                           mask_share=mask_share) if val_texts else None
    # one "epoch" of the loop is all the masked copies; its share gives the exact step count
    epochs = wanted_passes / copies
    cfg = load_config(None, **{"training.epochs": epochs, "training.batch_size": batch_size,
                               "training.learning_rate": learning_rate, "training.max_length": max_length,
                               "training.precision": precision, "training.seed": seed,
                               "training.early_stopping_patience": 0, "training.label_smoothing": 0.0,
                               "training.eval_every_epochs": epochs / 4,  # four validations in the run
                               "training.warmup_ratio": 0.06}).training
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    bf16 = resolve_precision(precision, accelerator.device)
    wrapped = MaskedLM(mlm)
    objective = MlmObjective(wrapped)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    before = _score(objective, wrapped, val, pad_id, bf16, predict_logits) if val is not None else None
    if accelerator.is_main_process:
        mark_running(out, signature)
    total = count_steps(len(train), cfg)
    say(f"{'Resuming' if resuming else 'Training'}: {total:,} steps of {batch_size} texts "
        f"({wanted_passes:.3g} passes over {len(windows):,} windows of at most {max_length} tokens, whole-word "
        f"masking of {mask_share:.0%}), {'bf16' if bf16 else 'fp32'}"
        + (f"; masked-token accuracy on {len(val):,} held-out texts before: {before:.3f}" if before is not None
           else "") + ".")
    state = fit(wrapped, objective, train, val if val is not None else _empty(), cfg, lr=learning_rate,
                pad_id=pad_id, bf16=bf16, run_dir=out, accelerator=accelerator, resume=resuming)
    after = _score(objective, wrapped, val, pad_id, bf16, predict_logits) if val is not None else None
    record = {
        "domainfit_version": __version__, "base_model": {"name": base.name,
                                                         "weights_sha256": weights_sha256(base.weights_file)},
        "data": {"source": str(data), "files": len(files), "sha256": fingerprint, "texts": len(texts),
                 "text_column": text_column, "windows": len(windows)},
        "vocabulary": {"extended": extend_vocab, "added_tokens": len(added), "unk_share_before": unk_before,
                       "unk_share_after": unk_after, "first_added": added[:50]},
        "training": {"steps": state.global_step, "passes": round(wanted_passes, 3), "batch_size": batch_size,
                     "learning_rate": learning_rate, "max_length": max_length, "mask_share": mask_share,
                     "masking": "whole words", "precision": "bf16" if bf16 else "fp32", "seed": seed,
                     "new_head": head_is_new, "seconds_this_session": round(time.perf_counter() - started, 1),
                     "history": state.history},
        "validation": {"texts": len(val_texts), "mlm_accuracy_before": before, "mlm_accuracy_after": after},
    }
    if accelerator.is_main_process:
        _write(out, mlm, tokenizer, record, card_facts(base.path) if not added else {})
    accelerator.wait_for_everyone()
    if after is not None:
        say(f"Masked-token accuracy on held-out texts: {before:.3f} → {after:.3f}.")
    say(f"[green]Saved[/] {escape(str(out))}: use it with --model {escape(str(out))}")
    return PretrainResult(out, record)


def _write(out: Path, mlm, tokenizer, record: dict, facts: dict) -> None:
    with staged_folder(out, merge=True, last="config.json") as staging:
        mlm.save_pretrained(str(staging))  # config.json moves in last: a folder without it is unfinished
        tokenizer.save_pretrained(str(staging))
        atomic_write_text(staging / RECORD, json.dumps(record, indent=2, default=str) + "\n")
        atomic_write_text(staging / "README.md", _card(out.name, record, facts))
    clear_run_files(out)


def _card(name: str, record: dict, facts: dict) -> str:
    import yaml

    front = {k: v for k, v in {"language": facts.get("language"), "license": facts.get("license"),
                               "library_name": "transformers", "pipeline_tag": "fill-mask",
                               "tags": ["domainfit", "continued-pretraining", "fill-mask"],
                               "base_model": record["base_model"]["name"]}.items() if v}
    v, d, t = record["vocabulary"], record["data"], record["training"]
    lines = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(), "---", "",
             f"# {name}", "",
             f"`{record['base_model']['name']}` further pre-trained by domainfit {record['domainfit_version']} with "
             f"masked words ({t['masking']}, {t['mask_share']:.0%}) on {d['texts']:,} texts "
             f"(`{Path(d['source']).name}`, sha256 {d['sha256'][:16]}), {t['steps']:,} steps.", ""]
    if v["extended"]:
        lines += [f"The vocabulary was extended by {v['added_tokens']:,} pieces the original tokenizer read as "
                  f"[UNK]; unknown tokens in that text: {_pct(v['unk_share_before'])} before, "
                  f"{_pct(v['unk_share_after'])} after. The languages of the base model's card no longer "
                  "describe this model, so none are stated.", ""]
    val = record["validation"]
    if val["mlm_accuracy_after"] is not None:
        lines += [f"Masked-token accuracy on {val['texts']:,} held-out texts: {val['mlm_accuracy_before']:.3f} "
                  f"before, {val['mlm_accuracy_after']:.3f} after.", ""]
    lines += ["Use it as a base model: `domainfit train --model PATH ...`. `pretrain.json` holds the full record.",
              ""]
    return "\n".join(lines)


def _score(objective, model, val, pad_id, bf16, predict_logits) -> float:
    outputs = predict_logits(model, val, pad_id, bf16=bf16)
    return round(objective.quick_score(outputs, val.targets), 4)


def _empty():
    from ..data.batching import Encoded

    return Encoded([], None, [])


def _pct(share: float | None) -> str:
    return "unknown" if share is None else f"{share:.1%}"


def _signature(settings: dict) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()

