"""The supervised training loop: short, on accelerate, resumable, distributed-ready.

One optimizer step consumes one *global* batch of ``batch_size`` examples: the batch is
the same on every process (built from ``(seed, epoch)``), each process takes its share
``batch[rank::world]``, and each share is cut into ``grad_accumulation`` micro-batches.
Losses are scaled by ``examples_in_micro_batch * world / examples_in_global_batch`` so that
the summed (and DDP-averaged) gradient equals the mean over the global batch: 1 process
or N processes give the same update.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from accelerate import Accelerator

from ..core.config import TrainingConfig
from ..core.io import atomic_file
from ..data.batching import Encoded, batch_order, collate
from ..methods.registry import trainable_state
from ..modeling.predict import autocast, predict_logits
from ..tasks.base import Task
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from .logging import RunLogger
from .memory import release_free_memory
from .tracking import Tracker, open_tracker

__all__ = ["TrainState", "fit", "make_optimizer", "count_steps"]


@dataclass
class TrainState:
    """Where a run is; saved in every checkpoint."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    total_steps: int = 0
    best_score: float | None = None
    best_step: int = 0
    bad_evals: int = 0
    stopped_early: bool = False
    history: list[dict] = field(default_factory=list)


def count_steps(n_examples: int, cfg: TrainingConfig) -> int:
    """Optimizer steps a run of ``n_examples`` takes with ``cfg`` (one per global batch)."""
    return max(1, math.ceil(cfg.epochs * math.ceil(n_examples / cfg.batch_size)))


def make_optimizer(model: torch.nn.Module, cfg: TrainingConfig, lr: float) -> torch.optim.Optimizer:
    """AdamW with three groups: encoder weights (decayed), encoder biases/norms (not
    decayed), and the head (its own, higher learning rate: it starts from random)."""
    decay, no_decay, head = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith("head."):
            head.append(p)
        elif p.ndim < 2 or "norm" in name.lower():
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [
        {"params": decay, "lr": lr, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "lr": lr, "weight_decay": 0.0},
        {"params": head, "lr": cfg.head_learning_rate, "weight_decay": cfg.weight_decay},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, foreach=True)


def _linear_schedule(optimizer, warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _evaluate(accelerator, model, task: Task, val: Encoded, pad_id: int, bf16: bool) -> float:
    """Primary validation score; every process scores its shard and the shards are merged."""
    if task.validation_score is not None:  # e.g. retrieval: every process scores the whole (small) set
        return task.validation_score(accelerator.unwrap_model(model), val, pad_id, bf16, accelerator.device)
    rank, world = accelerator.process_index, accelerator.num_processes
    shard = list(range(rank, len(val), world))
    sub = Encoded([val.input_ids[i] for i in shard],
                  [val.token_type_ids[i] for i in shard] if val.token_type_ids else None)
    logits = predict_logits(accelerator.unwrap_model(model), sub, pad_id, bf16=bf16, device=accelerator.device)
    if world > 1:
        parts: list[Any] = [None] * world
        torch.distributed.all_gather_object(parts, (shard, logits))
        order = [i for s, _ in parts for i in s]
        pieces = [lg for _, lg in parts]
        if pieces[0].ndim == 3:
            width = max(p.shape[1] for p in pieces)
            pieces = [torch.nn.functional.pad(p, (0, 0, 0, width - p.shape[1])) for p in pieces]
        logits = torch.cat(pieces)[torch.tensor(order).argsort()]
    return task.quick_score(logits, val.targets)


def fit(model: torch.nn.Module, task: Task, train: Encoded, val: Encoded, cfg: TrainingConfig, *, lr: float,
        pad_id: int, bf16: bool, run_dir: Path, accelerator: Accelerator, resume: bool = True,
        callbacks: list[Callable[[str, TrainState, dict], None]] | None = None,
        step_hooks: list[Callable[[torch.nn.Module, int], None]] | None = None,
        tracker: Tracker | None = None) -> TrainState:
    """Train ``model`` in place; at the end it holds the best validation weights.

    Args:
        model: a DomainModel with the method already applied.
        train, val: encoded examples with ``targets``; an empty ``val`` trains for the whole
            schedule without evaluation and keeps the final weights.
        cfg: training settings. lr: encoder learning rate.
        pad_id: the tokenizer's padding id. bf16: autocast matmuls to bfloat16.
        run_dir: output folder; checkpoints go to ``run_dir/checkpoints``, logs to
            ``run_dir/metrics.jsonl``.
        resume: continue from the newest checkpoint when there is one.
        callbacks: called as ``cb(event, state, info)``: ``"start"`` (info holds the live
            ``model``), then ``"step"`` after every optimizer step and ``"eval"`` after every
            validation.
        step_hooks: ``hook(model, global_step)`` after every optimizer step, before the
            gradients are cleared (a method's ``on_step``).
        tracker: where the logged points go besides ``metrics.jsonl`` (its opener closes
            it; see :mod:`.tracking`); None: TensorBoard when it is installed, opened and
            closed here.

    Returns:
        The final :class:`TrainState` (``best_score``, ``history``...).
    """
    rank, world = accelerator.process_index, accelerator.num_processes
    lengths = train.lengths()  # once: the batch order and the token budget both use it
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = count_steps(len(train), cfg)
    eval_every = max(1, round(cfg.eval_every_epochs * steps_per_epoch))
    optimizer = make_optimizer(model, cfg, lr)
    scheduler = _linear_schedule(optimizer, int(cfg.warmup_ratio * total), total)
    state = TrainState(total_steps=total)
    ckpt_dir = run_dir / "checkpoints"
    last = latest_checkpoint(ckpt_dir) if resume else None
    if last is not None:
        saved = load_checkpoint(last, model, optimizer, scheduler)
        saved.pop("step", None)
        state = TrainState(**saved)
    ddp_model = accelerator.prepare(model)
    own_tracker = tracker is None
    if own_tracker:
        tracker = open_tracker(None, run_dir) if accelerator.is_main_process else Tracker()
    if accelerator.is_main_process:
        tracker.begin(state.global_step)
    logger = RunLogger(run_dir, enabled=accelerator.is_main_process, total=total, start=state.global_step,
                       metric=task.primary_metric, patience=cfg.early_stopping_patience, tracker=tracker)
    logger.truncate_after(state.global_step)
    callbacks = list(callbacks or [])
    for cb in callbacks:
        cb("start", state, {"model": model})
    ddp_model.train()
    try:
        while state.global_step < total and not state.stopped_early:
            batches = batch_order(lengths, cfg.batch_size, cfg.seed, state.epoch,
                                  cfg.group_by_length)
            for batch in batches[state.step_in_epoch:]:
                t0 = time.perf_counter()
                loss = _step(accelerator, ddp_model, task, train, lengths, batch[rank::world], len(batch), cfg, pad_id,
                             bf16, world, task.splits_batches)
                if cfg.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(ddp_model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                state.global_step += 1
                for hook in step_hooks or ():
                    hook(model, state.global_step)
                optimizer.zero_grad(set_to_none=True)
                state.step_in_epoch += 1
                epoch_end = state.step_in_epoch >= len(batches)
                info = {"loss": loss, "lr": scheduler.get_last_lr()[0], "examples": len(batch),
                        "seconds": time.perf_counter() - t0, "epoch": state.epoch + state.step_in_epoch / len(batches)}
                logger.step(state.global_step, info)
                for cb in callbacks:
                    cb("step", state, info)
                done = state.global_step >= total
                evaluate = len(val) > 0 and (state.global_step % eval_every == 0 or epoch_end or done)
                if evaluate:
                    _validate(accelerator, ddp_model, task, val, pad_id, bf16, cfg, state, logger, ckpt_dir,
                              callbacks, info["epoch"])
                if epoch_end:
                    state.epoch += 1
                    state.step_in_epoch = 0
                # Checkpoint after every evaluation too, so best.safetensors never runs ahead of it.
                if evaluate or epoch_end or state.global_step % cfg.save_steps == 0:
                    _save(accelerator, model, optimizer, scheduler, state, ckpt_dir)
                    release_free_memory()
                if done or state.stopped_early:
                    break
    finally:
        logger.close()
        if own_tracker:
            tracker.close()
    accelerator.wait_for_everyone()
    # The best weights live on disk only (not as a second copy in memory); every process
    # reads them back from the shared output folder.
    best_file = ckpt_dir / "best.safetensors"
    if best_file.is_file():
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(best_file)), strict=False)
    return state


def _step(accelerator, model, task, train, lengths, share, global_size, cfg, pad_id, bf16, world,
          split: bool = True) -> float:
    """Forward/backward over this process's share of one global batch; returns the mean loss."""
    weight = 1.0
    if not share:
        # A last batch smaller than the number of processes leaves this one without examples,
        # but DDP needs every process in the gradient all-reduce: run one example, weighted 0.
        share, weight = [0], 0.0
    pieces = _micro_batches(share, lengths, cfg.grad_accumulation, cfg.max_batch_tokens if split else 0)
    total = 0.0
    for n, piece in enumerate(pieces):
        batch = {k: v.to(accelerator.device) for k, v in collate(train, piece, pad_id).items()}
        targets = batch.pop("targets")
        sync = n == len(pieces) - 1
        with (nullcontext() if sync else accelerator.no_sync(model)), autocast(bf16, accelerator.device):
            logits = model(**batch)
        loss = task.loss(logits, targets, cfg.label_smoothing or 0.0)
        accelerator.backward(loss * (weight * len(piece) * world / global_size))
        total += loss.item() * len(piece) * weight
    return total / max(1, len(share))


def _micro_batches(share: list[int], lengths: list[int], accumulation: int, max_tokens: int) -> list[list[int]]:
    """Cut a process's share of a batch into micro-batches.

    At least ``accumulation`` pieces; more when the padded batch would exceed
    ``max_tokens``: a length-grouped epoch has a few batches of long texts (on Banking77
    the longest holds 3,136 padded tokens against 552 on average), and their activations
    set the run's peak memory. Splitting them changes nothing in the update (the loss is
    weighted per example) and costs little time, because only those few batches are split.
    """
    pieces = accumulation
    if max_tokens:
        width = max(lengths[i] for i in share)
        pieces = max(pieces, math.ceil(len(share) * width / max_tokens))
    size = max(1, math.ceil(len(share) / pieces))
    return [share[i:i + size] for i in range(0, len(share), size)]


def _validate(accelerator, model, task, val, pad_id, bf16, cfg, state, logger, ckpt_dir, callbacks, epoch):
    score = _evaluate(accelerator, model, task, val, pad_id, bf16)
    improved = state.best_score is None or (score > state.best_score if task.higher_is_better
                                            else score < state.best_score)
    if improved:
        state.best_score, state.best_step, state.bad_evals = score, state.global_step, 0
        if accelerator.is_main_process:
            from safetensors.torch import save_file

            ckpt_dir.mkdir(parents=True, exist_ok=True)
            best = trainable_state(accelerator.unwrap_model(model))
            with atomic_file(ckpt_dir / "best.safetensors") as tmp:
                save_file({k: v.contiguous() for k, v in best.items()}, str(tmp))
        accelerator.wait_for_everyone()
    else:
        state.bad_evals += 1
        if cfg.early_stopping_patience and state.bad_evals >= cfg.early_stopping_patience:
            state.stopped_early = True
    record = {"step": state.global_step, "epoch": round(epoch, 4), f"val_{task.primary_metric}": score,
              "best": state.best_score}
    state.history.append(record)
    patience = cfg.early_stopping_patience
    logger.eval(dict(record, patience_left=max(0, patience - state.bad_evals)) if patience else record)
    for cb in callbacks:
        cb("eval", state, record)


def _save(accelerator, model, optimizer, scheduler, state, ckpt_dir):
    if accelerator.is_main_process:
        payload = {k: v for k, v in state.__dict__.items()}
        save_checkpoint(ckpt_dir, state.global_step, trainable_state(accelerator.unwrap_model(model)), optimizer,
                        scheduler, json.loads(json.dumps(payload)))
    accelerator.wait_for_everyone()
