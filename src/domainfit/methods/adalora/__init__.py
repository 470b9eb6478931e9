"""AdaLoRA through peft: LoRA whose rank budget moves to the layers that need it.

Zhang et al. (2023). Each adapted layer learns an SVD-shaped update ``B diag(E) A``; every
``delta_t`` of training the least important singular triplets are masked (``E`` set to 0),
until the average rank falls from ``init_r`` to ``target_r``; the last ``tfinal`` share of
training keeps the final pattern. ``on_step`` runs peft's ``update_and_allocate``.

What the artifact needs: the rank pattern is the set of zeros in the ``lora_E`` vectors,
which are saved with the other trained weights; the loaded model keeps all ``init_r``
triplets (the masked ones contribute exactly 0) and the same ``ranknum`` scale, so it
predicts exactly as the trained one.

Orthogonality penalty: peft adds ``orth_reg_weight * R`` (R: how far ``A Aᵀ`` and ``Bᵀ B``
are from the identity) in ``forward`` only when the wrapped model returns a loss, which a
bare encoder never does. domainfit's loss is computed outside the model, so the penalty's
gradient is injected in the backward pass instead, once per optimizer step (on the step's
first training forward), which equals adding it to the loss.

Resuming: peft's importance averages are not checkpointed, so a resumed run restarts them;
a run resumed in the final phase takes the pattern from the zeros of the loaded ``lora_E``
(read when the weights are loaded: the next optimizer step would regrow them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ...core.errors import ConfigError
from ..registry import Method, register_method, wrap_with_peft

# Used for the (ignored) schedule when an artifact is loaded: peft insists on a total.
_LOAD_TOTAL_STEPS = 1000


@dataclass
class AdaloraSettings:
    """AdaLoRA options; the schedule is given as shares of the run's optimizer steps."""

    init_r: int = 12
    """Rank every adapted layer starts with."""
    target_r: int = 8
    """Average rank left after pruning (less than init_r; the paper starts 1.5x above it)."""
    alpha: float = 32
    """Scaling numerator: the update is scaled by alpha / init_r."""
    dropout: float = 0.05
    """Dropout on the AdaLoRA branch."""
    target_modules: list[str] | str = field(default_factory=lambda: "all-linear")
    """Module names to adapt, or 'all-linear' (every linear layer of the encoder, as in the paper)."""
    tinit: float = 0.1
    """Share of steps trained at full rank before any pruning."""
    tfinal: float = 0.5
    """Share of steps at the end trained with the final rank pattern; tinit + tfinal < 1. Half, as
    in the paper's GLUE runs; it also fixes the pattern before early stopping usually ends a run."""
    delta_t: float = 0.01
    """Prune every this share of steps (peft's deltaT; at least every step)."""
    orth_reg_weight: float = 0.1
    """Weight of the penalty keeping A and B orthogonal (0.1 in the paper; 0 turns it off)."""


def check_adalora(settings: AdaloraSettings, model_config=None) -> None:
    """Reject impossible options before any weights are read."""
    s = settings
    if s.init_r <= 0 or not 0 < s.target_r < s.init_r:
        raise ConfigError(f"AdaLoRA prunes from init_r down to target_r: need 0 < target_r < init_r, "
                          f"got init_r={s.init_r}, target_r={s.target_r}.")
    if not (0 <= s.tinit < 1 and 0 <= s.tfinal < 1 and s.tinit + s.tfinal < 1):
        raise ConfigError(f"method.options.tinit and tfinal are shares of the run and must leave steps to prune "
                          f"in (tinit + tfinal < 1), got tinit={s.tinit}, tfinal={s.tfinal}.")
    if not 0 < s.delta_t <= 1:
        raise ConfigError(f"method.options.delta_t must be in (0, 1], got {s.delta_t}.")
    if not 0 <= s.dropout < 1:
        raise ConfigError(f"method.options.dropout must be in [0, 1), got {s.dropout}.")
    if s.orth_reg_weight < 0:
        raise ConfigError(f"method.options.orth_reg_weight must be 0 or more, got {s.orth_reg_weight}.")


class _AddToLoss(torch.autograd.Function):
    """Identity on ``x``; in backward, gives ``penalty`` the gradient 1, as if it were added to the loss."""

    @staticmethod
    def forward(ctx, x, penalty):
        ctx.penalty_meta = (penalty.dtype, penalty.device)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        dtype, device = ctx.penalty_meta
        return grad, torch.ones((), dtype=dtype, device=device)


class OrthogonalPenalty:
    """Forward hook that adds ``weight * R`` to the loss once per optimizer step.

    ``R`` is the mean over adapted layers of ``||A Aᵀ - I||_F`` and ``||Bᵀ B - I||_F`` (as in
    peft's ``AdaLoraModel.forward``). Only a training forward with gradients counts; the
    step hook re-arms it, so gradient accumulation and evaluation do not repeat it.
    """

    def __init__(self, weight: float, named_params: list[tuple[str, torch.nn.Parameter]]):
        self.weight = weight
        self.params = [(".lora_A." in name, p) for name, p in named_params]
        self.armed = True

    def penalty(self) -> torch.Tensor:
        terms = []
        for is_a, p in self.params:
            cov = p @ p.T if is_a else p.T @ p
            terms.append(torch.linalg.matrix_norm(cov - torch.eye(cov.shape[0], device=p.device, dtype=cov.dtype)))
        return torch.stack(terms).mean()

    def __call__(self, module, inputs, output):
        if not (self.armed and self.weight and module.training and torch.is_grad_enabled() and self.params):
            return output
        self.armed = False
        output.last_hidden_state = _AddToLoss.apply(output.last_hidden_state, self.weight * self.penalty())
        return output


def apply_adalora(model, settings: AdaloraSettings, ctx=None):
    """Wrap the encoder in a peft AdaLoRA model; the AdaLoRA triplets and the head train.

    Raises:
        ConfigError: impossible options, or target modules the encoder does not have.
    """
    from peft import AdaLoraConfig, TaskType

    check_adalora(settings)
    total = ctx.total_steps if ctx is not None and ctx.training and ctx.total_steps else _LOAD_TOTAL_STEPS
    try:
        config = AdaLoraConfig(
            task_type=TaskType.FEATURE_EXTRACTION,
            init_r=settings.init_r,
            target_r=settings.target_r,
            lora_alpha=settings.alpha,
            lora_dropout=settings.dropout,
            target_modules=settings.target_modules,
            total_step=total,
            tinit=int(settings.tinit * total),
            tfinal=int(settings.tfinal * total),
            deltaT=max(1, round(settings.delta_t * total)),
            orth_reg_weight=settings.orth_reg_weight,
        )
    except ValueError as exc:
        raise ConfigError(f"AdaLoRA cannot be applied to this model: {exc}") from exc
    model = wrap_with_peft(model, config, "AdaLoRA")
    pairs = [(n, p) for n, p in model.encoder.named_parameters() if ".lora_A." in n or ".lora_B." in n]
    model.encoder.orthogonal_penalty = OrthogonalPenalty(settings.orth_reg_weight, pairs)
    model.encoder.register_forward_hook(model.encoder.orthogonal_penalty)
    model.encoder.loaded_rank_pattern = None
    model.encoder.register_load_state_dict_post_hook(_remember_rank_pattern)
    return model


def _remember_rank_pattern(peft_model, incompatible_keys) -> None:
    """After weights are loaded (a resumed checkpoint): which triplets are masked, i.e. zero."""
    peft_model.loaded_rank_pattern = {n: (p != 0).view(-1).tolist()
                                      for n, p in peft_model.base_model.model.named_parameters() if ".lora_E." in n}


def adalora_step(model, settings: AdaloraSettings, global_step: int) -> None:
    """After an optimizer step (gradients still present): update importance, prune, re-arm the penalty."""
    tuner = model.encoder.base_model
    config = tuner.peft_config[tuner.trainable_adapter_name]
    if global_step > config.total_step - config.tfinal and config.rank_pattern is None:
        # Resumed in the final phase, where peft expects the pattern it found before the pause.
        config.rank_pattern = model.encoder.loaded_rank_pattern
    tuner.update_and_allocate(global_step)
    model.encoder.orthogonal_penalty.armed = True


# 1e-3: as for LoRA (domainfit's measured default), which AdaLoRA extends; the paper used
# 5e-4..2.2e-3 on DeBERTaV3-base. On the 480-row sample, 1e-3 and 2e-3 were within noise.
METHOD = register_method(Method("adalora", AdaloraSettings, apply_adalora, saves_base=False, learning_rate=1e-3,
                                  check=check_adalora, on_step=adalora_step,
                                  description="LoRA with a rank budget reallocated during training (peft)"))
