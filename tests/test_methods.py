"""The parameter-efficient methods: what trains and what is saved.

Per method, the trainable weights are checked by name and by count on the tiny BERT (2
layers, hidden 32, intermediate 64, 3 outputs), where the counts can be worked out by hand.
That every method × task loads to the same predictions is test_conformance's.
"""

from __future__ import annotations


import pytest
import torch
from safetensors.torch import load_file

import domainfit
from domainfit.core.errors import ConfigError
from domainfit.methods import get_method
from domainfit.methods.registry import MethodContext, trainable_state
from domainfit.modeling import DomainModel, build_encoder
from helpers import METHOD_OPTIONS, STORED, fast_settings, write_task_data

TEXTS = ["where is my card", "refund my order please", "forgot my password", "我的卡丢了"]
HEAD = 32 * 3 + 3

OPTIONS = METHOD_OPTIONS


def _model(path, method, options, total_steps=10, num_outputs=3, pooling="mean"):
    torch.manual_seed(0)
    encoder = build_encoder(str(path))
    model = DomainModel(encoder, num_outputs, pooling=pooling)
    m = get_method(method)
    settings = m.parse(options)
    if m.check is not None:
        m.check(settings, encoder.config)
    return m.apply(model, settings, MethodContext(total_steps, encoder.config.model_type, True)), settings


def _trainable(model):
    return {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}


def test_adalora_rank_pattern_survives_the_round_trip(tmp_path, tiny_model):
    """AdaLoRA prunes ranks by zeroing entries of lora_E during training; a loaded model must
    keep exactly those zeros (the round trip of every method is in test_conformance)."""
    out = tmp_path / "model"
    settings = fast_settings(**{"data.train": str(write_task_data(tmp_path, "classification")),
                                "method.name": "adalora", "training.epochs": 2})
    domainfit.train(output=str(out), model=str(tiny_model), **settings,
                    **{f"method.options.{k}": v for k, v in OPTIONS["adalora"].items()})
    state = load_file(str(out / "adapter.safetensors"))
    e = {k: v for k, v in domainfit.load(out).model.state_dict().items() if ".lora_E." in k}
    assert sum(int((v == 0).sum()) for v in e.values()) > 0
    for k, v in e.items():
        torch.testing.assert_close(v, state[k], rtol=0, atol=0)


# Counts on the tiny BERT, worked out by hand (per layer unless said otherwise).
EXPECTED = {
    # q, k, v, attention-out, intermediate, output biases + 2 LayerNorm biases; + embedding LayerNorm.
    ("bitfit", ()): 2 * (4 * 32 + 64 + 32 + 2 * 32) + 32,
    # one adapter (32→2→32: 66 + 96) + 2 LayerNorms (64 each).
    ("adapter", ()): 2 * (162 + 128),
    ("adapter", (("placement", "houlsby"),)): 2 * (2 * 162 + 128),
    ("adapter", (("train_layer_norms", False),)): 2 * 162,
    # 4 tokens × 2 layers × (key + value) × 32.
    ("prefix", (("num_virtual_tokens", 4),)): 4 * 2 * 2 * 32,
    ("prompt", (("num_virtual_tokens", 4), ("init", "random"))): 4 * 32,
    # key, value (outputs: 32 each), attention-out (input: 32), output (input: 64).
    ("ia3", ()): 2 * (32 + 32 + 32 + 64),
    # A (r×in) + B (out×r) + E (r) on q, k, v, attention-out (32→32), intermediate (32→64), output (64→32).
    ("adalora", (("init_r", 4), ("target_r", 2))): 2 * (4 * (128 + 128 + 4) + 2 * (128 + 256 + 4)),
}


@pytest.mark.parametrize("method,options", sorted(EXPECTED),
                         ids=[f"{m}{dict(o) or ''}" for m, o in sorted(EXPECTED)])
def test_trainable_parameters(tiny_model, method, options):
    model, _ = _model(tiny_model, method, dict(options))
    trainable = _trainable(model)
    assert trainable.pop("head.weight") == 96 and trainable.pop("head.bias") == 3
    assert trainable and all(STORED[method](n) for n in trainable), sorted(trainable)[:5]
    assert sum(trainable.values()) == EXPECTED[method, options]
    assert set(trainable_state(model)) == set(trainable) | {"head.weight", "head.bias", "output_scale", "output_shift"}


@pytest.mark.parametrize("placement", ["pfeiffer", "houlsby"])
def test_untrained_adapter_is_the_identity(tiny_model, placement):
    torch.manual_seed(0)
    plain = DomainModel(build_encoder(str(tiny_model)), 3).eval()
    adapted, _ = _model(tiny_model, "adapter", {"placement": placement})
    adapted.head.load_state_dict(plain.head.state_dict())
    batch = {"input_ids": torch.tensor([[2, 10, 11, 3, 0]]), "attention_mask": torch.tensor([[1, 1, 1, 1, 0]])}
    with torch.no_grad():
        torch.testing.assert_close(adapted.eval()(**batch), plain(**batch), rtol=0, atol=0)
        for name, p in adapted.named_parameters():
            if name.endswith("up.weight"):
                p.normal_()
        assert not torch.allclose(adapted(**batch), plain(**batch))  # the adapters are in the forward pass


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_prompt_tokens_are_left_out_of_pooling(tiny_model, pooling):
    model, _ = _model(tiny_model, "prompt", {"num_virtual_tokens": 3}, pooling=pooling)
    ids, mask = torch.tensor([[2, 10, 11, 3, 0]]), torch.tensor([[1, 1, 1, 1, 0]])
    model.eval()
    with torch.no_grad():
        hidden = model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        assert hidden.shape[1] == 3 + 5
        expected = hidden[0, 3] if pooling == "cls" else hidden[0, 3:7].mean(0)
        torch.testing.assert_close(model.embed(ids, mask)[0], expected)


def test_prefix_is_attended_like_extra_keys_and_values(tiny_model_no_dropout):
    """peft passes the prefix as a key/value cache; recompute BERT by hand to see it is used as one
    (a transformers release that ignored it would otherwise only show as worse accuracy)."""
    model, _ = _model(tiny_model_no_dropout, "prefix", {"num_virtual_tokens": 3})
    model.eval()
    bert = model.encoder.get_base_model()
    ids, mask = torch.tensor([[2, 10, 11, 3, 0]]), torch.tensor([[1, 1, 1, 1, 0]])
    with torch.no_grad():
        actual = model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        # (tokens, layers × (key, value), heads, head_dim), the layout peft reshapes the prefix to
        prefix = model.encoder.prompt_encoder.default.embedding.weight.view(3, 2 * 2, 2, 16).permute(1, 2, 0, 3)
        emb = bert.embeddings
        h = emb.LayerNorm(emb.word_embeddings(ids) + emb.position_embeddings(torch.arange(3, 8))  # after the prefix
                          + emb.token_type_embeddings(torch.zeros_like(ids)))
        bias = (1.0 - torch.cat([torch.ones(1, 3), mask.float()], 1))[:, None, None, :] * -1e9
        for i, layer in enumerate(bert.encoder.layer):
            att = layer.attention.self
            q, k, v = (f(h).view(1, 5, 2, 16).transpose(1, 2) for f in (att.query, att.key, att.value))
            k, v = torch.cat([prefix[2 * i][None], k], 2), torch.cat([prefix[2 * i + 1][None], v], 2)
            context = (torch.softmax(q @ k.transpose(-1, -2) / 4 + bias, -1) @ v).transpose(1, 2).reshape(1, 5, 32)
            h = layer.attention.output(context, h)
            h = layer.output(layer.intermediate(h), h)
    torch.testing.assert_close(actual[:, :4], h[:, :4], rtol=0, atol=1e-5)


def test_adalora_prunes_to_target_rank_and_rebuilds_the_pattern_on_resume(tiny_model):
    model, settings = _model(tiny_model, "adalora", {"init_r": 4, "target_r": 2, "tinit": 0.1, "tfinal": 0.3},
                             total_steps=10)
    on_step = get_method("adalora").on_step
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ids, mask = torch.tensor([[2, 10, 11, 3], [2, 12, 3, 0]]), torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    model.train()
    for step in range(1, 11):
        model(ids, mask).pow(2).mean().backward()
        optimizer.step()
        on_step(model, settings, step)
        optimizer.zero_grad()
    e = [p for n, p in model.named_parameters() if ".lora_E." in n]
    assert sum(int((p != 0).sum()) for p in e) == 2 * len(e)  # target_r per layer on average

    resumed, _ = _model(tiny_model, "adalora", {"init_r": 4, "target_r": 2, "tinit": 0.1, "tfinal": 0.3},
                        total_steps=10)
    resumed.load_state_dict(trainable_state(model), strict=False)
    with torch.no_grad():
        for n, p in resumed.named_parameters():
            if ".lora_E." in n:
                p.add_(1.0)  # the resumed run's first step regrows the masked values; they must be masked again
    on_step(resumed, settings, 9)
    for (n, p), (_, q) in zip(resumed.named_parameters(), model.named_parameters()):
        if ".lora_E." in n:
            assert torch.equal(p == 0, q == 0), n


def test_adalora_orthogonality_penalty_enters_the_gradient_once_per_step(tiny_model):
    grads = {}
    for weight in (0.0, 0.5):
        model, settings = _model(tiny_model, "adalora", {"init_r": 4, "target_r": 2, "orth_reg_weight": weight,
                                                         "dropout": 0.0})
        model.train()
        with torch.no_grad():  # non-zero E so that the task loss reaches A and B too
            for n, p in model.named_parameters():
                if ".lora_E." in n:
                    p.fill_(0.1)
        ids, mask = torch.tensor([[2, 10, 11, 3]]), torch.tensor([[1, 1, 1, 1]])
        torch.manual_seed(1)  # same dropout masks in both runs
        model(ids, mask).sum().backward()
        torch.manual_seed(1)
        model(ids, mask).sum().backward()  # a second micro-batch of the same step adds no penalty
        penalty = model.encoder.orthogonal_penalty
        assert penalty.armed == (weight == 0)  # disarmed by the first forward until the step hook
        grads[weight] = {n: p.grad.clone() for n, p in model.named_parameters() if ".lora_A." in n}
    params = [p.detach().clone().requires_grad_(True) for _, p in penalty.params]
    penalty.params = [(is_a, p) for (is_a, _), p in zip(penalty.params, params)]
    expected = torch.autograd.grad(0.5 * penalty.penalty(), params)
    a_grads = [g for (is_a, _), g in zip(penalty.params, expected) if is_a]
    for (name, g1), g0, e in zip(grads[0.5].items(), grads[0.0].values(), a_grads):
        torch.testing.assert_close(g1 - g0, e, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("method,model_type,hint", [
    ("adapter", "gpt2", "supported model types: bert"),
    ("prefix", "mpnet", "supported model types: bert"),
    ("ia3", "mpnet", "target_modules"),
])
def test_check_rejects_unsupported_models_before_any_work(tmp_path, method, model_type, hint):
    from transformers import AutoConfig

    folder = tmp_path / model_type  # a config only: no weights, no tokenizer, so any later step would fail
    folder.mkdir()
    AutoConfig.for_model(model_type).to_json_file(str(folder / "config.json"))
    with pytest.raises(ConfigError, match=hint):
        domainfit.train(output=str(tmp_path / "out"), model=str(folder),
                        **{"data.train": str(write_task_data(tmp_path, "classification")), "method.name": method})
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("method,options,hint", [
    ("adalora", {"init_r": 4, "target_r": 4}, "0 < target_r < init_r"),
    ("adalora", {"tinit": 0.6, "tfinal": 0.4}, "tinit \\+ tfinal < 1"),
    ("adapter", {"placement": "middle"}, "pfeiffer, houlsby"),
    ("prompt", {"init": "zeros"}, "sample_vocab, text, random"),
    ("prefix", {"num_virtual_tokens": 0}, "positive"),
    ("ia3", {"target_modules": ["key"]}, "feedforward_modules"),
])
def test_check_rejects_impossible_options(tiny_model, method, options, hint):
    from transformers import AutoConfig

    m = get_method(method)
    with pytest.raises(ConfigError, match=hint):
        m.check(m.parse(options), AutoConfig.from_pretrained(str(tiny_model)))


def test_unknown_option_lists_the_known_ones():
    with pytest.raises(ConfigError, match="known: .*num_virtual_tokens.*prefix_projection"):
        get_method("prefix").parse({"virtual_tokens": 8})


class _Crash(Exception):
    pass


@pytest.mark.integration  # three whole training runs per method: the resume family (with test_resume's SIGKILL)
@pytest.mark.parametrize("method", ["fewshot", "adapter", "bitfit", "ia3", "prefix", "prompt", "lora", "adalora"])
def test_interrupted_run_resumes_to_the_same_model(tmp_path, tiny_model, method):
    """A run that dies after a checkpoint and is started again ends with the same weights as
    one that was never interrupted (AdaLoRA: it resumes and finishes; its importance scores
    are not checkpointed, so the pruning after a resume can differ)."""
    data = write_task_data(tmp_path, "classification")
    settings = fast_settings(**{"data.train": str(data), "method.name": method, "training.epochs": 3,
                                "training.save_steps": 4, "training.eval_every_epochs": 0.5,
                                **{f"method.options.{k}": v for k, v in OPTIONS.get(method, {}).items()}})

    def crash(event, state, info):
        if event == "step" and state.global_step == 7:
            raise _Crash

    reference = domainfit.train(output=str(tmp_path / "ref"), model=str(tiny_model), **settings)
    out = tmp_path / "run"
    with pytest.raises(_Crash):
        domainfit.train(output=str(out), model=str(tiny_model), callbacks=[crash], **settings)
    assert (out / "checkpoints").exists() and not (out / "domainfit.json").exists()
    resumed = domainfit.train(output=str(out), model=str(tiny_model), **settings)
    assert resumed.state.global_step == reference.state.global_step
    if method == "adalora":
        return
    ref, got = trainable_state(reference.model), trainable_state(resumed.model)
    assert ref.keys() == got.keys()
    for key in ref:
        torch.testing.assert_close(got[key], ref[key], rtol=0, atol=1e-6, msg=key)
