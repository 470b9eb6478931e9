"""Answering a customer: intent → template; else FAQ/documents; else an honest hand-off.

For each message (batched):

1. the intent model gives an intent and the out-of-scope detector a score; when the score
   is within the calibrated threshold (and the intent is not the out-of-scope class), the
   intent's template is the answer (route ``intent``);
2. a message that is not confident on its own, in a session whose previous turn had an
   intent, is read again together with the previous message; if that is confident *and*
   gives the same intent, it is a follow-up (route ``intent``, ``follow_up: true``);
3. otherwise the retrieval index (FAQ pairs and document passages) is searched; when the
   best passage's cosine similarity reaches ``min_score`` its answer is given with its
   source (route ``faq`` or ``document``), composed by a small generative model from the
   best passages when generation is on;
4. otherwise the fallback text, and a hand-off record for an agent (route ``fallback``).

Every answer carries its route, intent, scores and sources.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from ...core.errors import DomainfitError
from .answers import Answer, render
from .bundle import read_bundle
from .conversations import ConversationStore, Session

__all__ = ["Assistant", "load_assistant", "looks_like_follow_up"]

ROUTES = ("intent", "faq", "document", "fallback")


class Assistant:
    """A loaded customer-service bundle.

    Example:
        >>> bot = Assistant("bundle")                                   # doctest: +SKIP
        >>> bot.answer("my card still hasn't arrived")["route"]        # doctest: +SKIP
        'intent'
    """

    def __init__(self, bundle: str | Path, *, store: ConversationStore | None = None,
                 generation: bool | None = None):
        from ...inference import load
        from ...ood import OutOfScopeDetector

        self.path = Path(bundle)
        self.meta = read_bundle(self.path)
        self.intent = load(self.path / self.meta["intent"]["path"])
        self.detector = OutOfScopeDetector.load(self.path / "ood")
        self.threshold = float(self.meta["out_of_scope"]["threshold"])
        self.oos_label = self.meta["intent"].get("oos_label")
        raw = json.loads((self.path / "answers.json").read_text(encoding="utf-8"))
        self.answers = {k: Answer(v["answer"], v.get("slots", {})) for k, v in raw.items()}
        # The slots a request's context may set; the others come only from the bundle
        # (a bundle built before this list existed lets a client set none).
        self.client_slots = frozenset(self.meta.get("client_slots", []))
        self.retrieval = None
        self.reranker = None
        r = self.meta.get("retrieval")
        if r:
            self.retrieval = load(self.path / r["path"])
            self.min_score = float(r["min_score"])
            self.candidates = int(r.get("candidates", 10))
            if r.get("rerank"):
                self.reranker = load(self.path / r["rerank"])
        self.fallback = self.meta["fallback"]
        self.store = store
        gen = self.meta.get("generation", {})
        enabled = gen.get("enabled", False) if generation is None else generation
        self.composer = None
        if enabled:
            from .generation import Composer

            self.composer = Composer(gen.get("model", "smollm2"), gen.get("max_new_tokens", 96),
                                     gen.get("passages", 3))

    # ---------------------------------------------------------------------------- scoring

    def _classify(self, texts: list[str]) -> list[dict]:
        feats, logits = self.intent.features(texts)
        z = logits - logits.max(1, keepdims=True)
        probs = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        ood = self.detector.score(feats, logits)
        out = []
        for p, s in zip(probs, ood):
            best = int(p.argmax())
            label = self.intent.labels[best]
            confident = bool(s <= self.threshold) and label != self.oos_label
            out.append({"intent": label, "probability": float(p[best]), "out_of_scope": float(s),
                        "confident": confident})
        return out

    def _search(self, texts: list[str]) -> list[list[dict]]:
        if self.retrieval is None or not texts:
            return [[] for _ in texts]
        depth = max(self.candidates, self.composer.passages if self.composer else 1)
        hits = self.retrieval.search(texts, k=depth)
        if self.reranker is not None:
            reordered = []
            for text, row in zip(texts, hits):
                scores = self.reranker.pair_scores([text] * len(row), [h["text"] for h in row])
                for h, s in zip(row, scores):
                    h["rerank_score"] = float(s)
                reordered.append(sorted(row, key=lambda h: -h["rerank_score"]))
            hits = reordered
        return hits

    # ---------------------------------------------------------------------------- answering

    def answer_many(self, items: list[dict]) -> list[dict]:
        """Answer a batch. Each item: ``message``, ``session`` (a :class:`Session` or None)
        and ``context`` (slot values, optional). Returns one result dict per item."""
        messages = [_check_message(i["message"]) for i in items]
        results: list[dict[str, Any]] = [{} for _ in items]
        first = self._classify(messages)
        # Follow-ups: re-read an unsure message together with the previous one, but only a
        # message that reads like a follow-up (short, or pointing back); a new question on
        # another topic is answered on its own, never with the last topic's answer.
        again = [n for n, (c, i) in enumerate(zip(first, items)) if not c["confident"] and i.get("session")
                 and i["session"].last_intent and i["session"].last_message and looks_like_follow_up(messages[n])]
        if again:
            joined = [f"{items[n]['session'].last_message} {messages[n]}" for n in again]
            for n, c in zip(again, self._classify(joined)):
                if c["confident"] and c["intent"] == items[n]["session"].last_intent:
                    first[n] = {**c, "follow_up": True}
        need_search = []
        for n, (c, item) in enumerate(zip(first, items)):
            scores = {"intent": c["probability"], "out_of_scope": c["out_of_scope"], "threshold": self.threshold}
            results[n] = {"answer": None, "route": None, "intent": c["intent"] if c["confident"] else None,
                          "candidate_intent": c["intent"], "scores": scores, "sources": [], "handoff": None,
                          "follow_up": bool(c.get("follow_up")), "missing_slots": []}
            template = self.answers.get(c["intent"]) if c["confident"] else None
            if template is not None:
                session = item.get("session")
                given = {**(session.slots if session else {}), **(item.get("context") or {})}
                values = {k: v for k, v in given.items() if k in self.client_slots}  # never the operator's
                text, missing = render(template, values)
                results[n].update(answer=text, route="intent", missing_slots=missing,
                                  sources=[{"kind": "intent", "id": c["intent"]}])
            else:
                need_search.append(n)
        hits = self._search([messages[n] for n in need_search])
        for n, row in zip(need_search, hits):
            result = results[n]
            best = row[0] if row else None
            if best is not None:
                result["scores"]["retrieval"] = float(best["score"])
                if "rerank_score" in best:
                    result["scores"]["rerank"] = best["rerank_score"]
            top_cosine = max((h["score"] for h in row), default=None)
            if best is not None and top_cosine is not None and top_cosine >= self.min_score:
                kind = best.get("kind", "document")
                used = [h for h in row if h["score"] >= self.min_score][: (self.composer.passages
                                                                           if self.composer else 1)]
                answer = best.get("answer") or best["text"]
                if self.composer is not None:
                    composed = self.composer.compose(messages[n], used)
                    if composed:
                        answer, result["generated"] = composed, True
                result.update(answer=answer, route="faq" if kind == "faq" else "document",
                              sources=[_source(h) for h in used])
            else:
                reason = ("no confident intent and no FAQ or document passage scored "
                          f"{self.min_score:g} or more" if self.retrieval is not None
                          else "no confident intent")
                if result["candidate_intent"] and first[n]["confident"]:
                    reason = f"intent {result['candidate_intent']!r} has no answer template and " + reason
                result.update(answer=self.fallback, route="fallback", handoff={"reason": reason})
        return results

    def answer(self, message: str, session_id: str | None = None, context: dict | None = None,
               request_id: str | None = None) -> dict:
        """Answer one message in a session (logged when the assistant has a store); an unknown
        or missing session id starts a new session."""
        session = self.store.session(session_id) if self.store else Session(session_id or "local")
        result = self.answer_many([{"message": message, "session": session, "context": context}])[0]
        return self.finish(session, message, result, request_id)

    def finish(self, session: Session, message: str, result: dict, request_id: str | None = None) -> dict:
        """Log the turn (when there is a store) and add the session id and turn number."""
        if self.store is not None:
            result["turn"] = self.store.log_turn(session, message=message, result=result, request_id=request_id)
        else:
            session.turns += 1
            if result["route"] == "intent":
                session.last_intent = result["intent"]
            session.last_message = message
            result["turn"] = session.turns
        result["session_id"] = session.id
        return result


def _source(hit: dict) -> dict:
    out = {"kind": hit.get("kind", "document"), "id": hit["id"], "score": float(hit["score"])}
    for key in ("title", "source", "answer"):
        if hit.get(key):
            out[key] = hit[key]
    return out


FOLLOW_UP_WORDS = 5
"""A message of at most this many words may be a follow-up of the last one ("and now?")."""
_POINTING_BACK = frozenset("it its that this these those they them there same also too else again".split())
_OPENERS = ("and ", "but ", "what about", "how about", "also ", "so ")


def looks_like_follow_up(message: str) -> bool:
    """True for a message that may continue the last topic: short ("yet?", "and now"), or
    starting or pointing back like one ("what about it", "and the fee for that?"). A full
    question of its own ("how do I delete my facebook account") is not, so it is never
    answered with the previous topic's answer. Texts without spaces (Chinese, Japanese)
    count by characters."""
    text = message.strip().lower()
    words = re.findall(r"\w+", text)
    if " " not in text and len(text) > 2 * FOLLOW_UP_WORDS:  # a script without spaces
        return len(text) <= 4 * FOLLOW_UP_WORDS
    if len(words) <= FOLLOW_UP_WORDS:
        return True
    return text.startswith(_OPENERS) or (len(words) <= 2 * FOLLOW_UP_WORDS and bool(_POINTING_BACK & set(words)))


def _check_message(message: Any) -> str:
    if not isinstance(message, str):
        raise DomainfitError("a message is text.")
    if not message.strip():
        raise DomainfitError("the message is empty.")
    return message.strip()


def load_assistant(bundle: str | Path, **kwargs: Any) -> Assistant:
    return Assistant(bundle, **kwargs)
