"""Optional answer generation from retrieved passages (off by default).

A small instruction-tuned causal LM (``smollm2``: the packaged SmolLM2-135M-Instruct, or any
local folder / hub id) is asked to answer the customer's message from the numbered
passages only, quoting the passage it uses. Decoding is greedy and bounded. The result is
used only when it cites only passages it was given (``[1]``…) and quotes one of them word
for word (see :func:`acceptable`); otherwise the best passage's own answer is used. Either
way the answer goes out with its sources. The packaged 135M model rarely writes an answer
that passes (it tends to echo the passages or invent commands); a larger local model does
better. Generation costs seconds per answer on a CPU.
"""

from __future__ import annotations

import re
import threading

import torch

__all__ = ["Composer", "acceptable"]

_INSTRUCTION = ("You are a customer-service assistant. Answer the customer's message using only the numbered "
                "passages below. Quote the words of the passage you use in double quotes and cite it as [1], [2] "
                "or [3]. If the passages do not answer the message, say that you do not know.")


class Composer:
    def __init__(self, model: str = "smollm2", max_new_tokens: int = 96, passages: int = 3):
        from ...modeling.lm import load_causal_lm

        _, self.lm, self.tokenizer = load_causal_lm(model)
        self.lm.eval()
        self.max_new_tokens = max_new_tokens
        self.passages = passages
        self._lock = threading.Lock()  # one generation at a time (the model is not re-entrant)

    def prompt(self, message: str, hits: list[dict]) -> str:
        numbered = "\n".join(f"[{n}] {(h.get('answer') or h['text'])[:1200]}" for n, h in enumerate(hits, 1))
        content = f"{_INSTRUCTION}\n\nPassages:\n{numbered}\n\nCustomer: {message[:2000]}"
        chat = [{"role": "user", "content": content}]
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        return content + "\nAnswer:"

    @torch.no_grad()
    def compose(self, message: str, hits: list[dict]) -> str | None:
        if not hits:
            return None
        hits = hits[: self.passages]
        room = getattr(self.lm.config, "max_position_embeddings", 2048) - self.max_new_tokens
        ids = self.tokenizer(self.prompt(message, hits), return_tensors="pt", truncation=True,
                             max_length=max(16, min(room, 4096)), return_token_type_ids=False)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with self._lock:
            out = self.lm.generate(**ids, max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=pad)
        text = self.tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
        return text if acceptable(text, hits) else None


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def acceptable(text: str, hits: list[dict]) -> bool:
    """A composed answer is used only when it cites only passages it was given ([1]...) and
    quotes ("...", at least three words) a passage it cites, word for word; a small model
    that invents an answer or echoes the prompt fails this."""
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", text)}
    if not text.strip() or not cited or not cited <= set(range(1, len(hits) + 1)):
        return False
    if re.search(r"^\s*(customer|passages)\s*:", text, re.I | re.M):
        return False
    sources = [_words(hits[n - 1].get("answer") or hits[n - 1]["text"]) for n in cited]
    quotes = [_words(q) for q in re.findall(r"[\"“]([^\"”]+)[\"”]", text)]
    return any(len(q.split()) >= 3 and any(q in src for src in sources) for q in quotes)
