"""A seeded news stream with known negative surges, for the monitoring benchmark.

Built from real Financial PhraseBank **test** sentences (never copied into the repository:
read from ``../shared/data`` at run time) and the companies of ``recipes/finance_entities.csv``:

* **Entities.** The first ``entities`` companies of the file. Each gets a background rate
  of documents a day from a Zipf-like spread (the first company ~``top_rate`` a day, the
  last ~``top_rate / 6``), so big and small names are both in the stream.
* **Documents.** A document is one sentence with the company's name put in front as the
  headline subject (``"Nokia Oyj : Operating profit rose to EUR 13.1 mn ."``), at a
  uniformly random second of its hour.
* **Two pools, each a strict cycle.** Half of the test set's negative sentences (at random)
  are kept for the surges; the background draws from all the other test sentences, in a
  shuffled order that then repeats as it is, so a sentence comes back only after the whole
  pool (about 2.7 days at the default rates, more than the 2-day de-duplication window: a
  repeat is never a reprint by accident). The surges cycle through their own pool the same
  way and start at least 49 hours apart, so no surge repeats another's sentences.
* **Surges.** ``surges`` companies (chosen at random, each once) get ``surge_per_hour``
  extra *negative* sentences an hour for ``surge_hours`` hours, starting at a random hour
  after the first ``warmup_days`` (so every company has a baseline). The ground truth is
  ``(entity, start, end)`` in POSIX seconds.
* **Reprints** (``reprint_share``): copies of randomly chosen documents, sent 1 to 180
  minutes after the original, with one of the edits wire services make: a source prefix
  ("(Reuters) -", "UPDATE 1-", "Helsinki, "), a trailing credit ("(Reporting by ...)"), or
  one word dropped. Each gets its own id.

Everything is a function of ``seed``.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path

T0 = 1767225600  # 2026-01-01T00:00:00Z
HOUR = 3600

_PREFIXES = ["(Reuters) - ", "UPDATE 1-", "Helsinki, ", "BRIEF-", "Press release: "]
_CREDITS = [" (Reporting by Anna Virtanen; editing by Mark Potter)", " (c) 2026 Newswire", " -- Company statement"]


@dataclass
class Stream:
    documents: list[dict]
    surges: list[dict] = field(default_factory=list)  # entity, name, start, end (POSIX seconds)
    reprints: int = 0


def read_sentences(path: Path) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return [(r["text"], r["label"]) for r in csv.DictReader(fh)]


def read_companies(path: Path) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return [(r["id"], r["name"]) for r in csv.DictReader(fh)]


def _edit(text: str, rng: random.Random) -> str:
    kind = rng.randrange(3)
    if kind == 0:
        return rng.choice(_PREFIXES) + text
    if kind == 1:
        return text + rng.choice(_CREDITS)
    words = text.split()
    if len(words) > 6:
        del words[rng.randrange(2, len(words))]
    return " ".join(words)


def build_stream(sentences: list[tuple[str, str]], companies: list[tuple[str, str]], *, days: int = 30,
                 entities: int = 40, top_rate: float = 24.0, surges: int = 6, surge_hours: int = 3,
                 surge_per_hour: int = 6, warmup_days: int = 8, reprint_share: float = 0.0,
                 seed: int = 0) -> Stream:
    """The stream (documents sorted by time) and its ground truth; see the module doc."""
    rng = random.Random(seed)
    chosen = companies[:entities]
    rates = [top_rate / (1 + 5 * i / max(len(chosen) - 1, 1)) for i in range(len(chosen))]
    negatives = [x for x in sentences if x[1] == "negative"]
    surge_pool = rng.sample(negatives, len(negatives) // 2)
    kept = set(surge_pool)
    background = rng.sample([x for x in sentences if x not in kept], len(sentences) - len(surge_pool))
    cursor = {"background": 0, "surge": 0}
    docs: list[dict] = []

    def draw(name: str, pool: list) -> tuple[str, str]:
        item = pool[cursor[name] % len(pool)]
        cursor[name] += 1
        return item

    def add(hour: int, name: str, sentence: str, label: str, kind: str) -> None:
        docs.append({"id": f"{kind}-{len(docs)}", "time": T0 + hour * HOUR + rng.randrange(HOUR),
                     "text": f"{name} : {sentence}", "label": label})

    for hour in range(days * 24):
        for (_, name), rate in zip(chosen, rates):
            for _ in range(_poisson(rng, rate / 24)):
                add(hour, name, *draw("background", background), "doc")
    starts: list[int] = []
    candidates = list(range(warmup_days * 24, days * 24 - surge_hours - 2))
    while len(starts) < surges:
        start = rng.choice(candidates)
        if all(abs(start - other) >= 49 for other in starts):
            starts.append(start)
    truth = []
    for (entity, name), start in zip(rng.sample(chosen, surges), starts):
        for hour in range(start, start + surge_hours):
            for _ in range(surge_per_hour):
                add(hour, name, *draw("surge", surge_pool), "surge")
        truth.append({"entity": entity, "name": name, "start": T0 + start * HOUR,
                      "end": T0 + (start + surge_hours) * HOUR})
    count = int(len(docs) * reprint_share)
    for original in rng.sample(docs, count):
        docs.append({"id": f"reprint-{len(docs)}", "time": original["time"] + rng.randint(60, 180 * 60),
                     "text": _edit(original["text"], rng), "label": original["label"]})
    docs.sort(key=lambda d: (d["time"], d["id"]))
    return Stream(docs, sorted(truth, key=lambda t: t["start"]), count)


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method: fine for the small means of one company's hour
    limit, k, p = pow(2.718281828459045, -mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def load_stream(sentences: list[tuple[str, str]], companies: list[tuple[str, str]], *, documents: int,
                days: int = 30, reprint_share: float = 0.3, seed: int = 0):
    """``documents`` documents in time order (a generator, so a million need no memory) for
    the throughput run: each a PhraseBank sentence with its company in front, with half of its
    words (at random) swapped for random words of the sentences' own vocabulary, so that each
    is a new story of a real sentence's length (the model's cost depends on the length, not
    the meaning); ``reprint_share`` of them are reprints (as in :func:`build_stream`) sent
    1 to 180 minutes after their original."""
    import heapq

    rng = random.Random(seed)
    vocabulary = [w for text, _ in sentences for w in text.split()]  # every occurrence: drawn by frequency
    weights = [1 / (1 + 5 * i / max(len(companies) - 1, 1)) for i in range(len(companies))]
    step = days * 86400 / documents
    pending: list[tuple[int, int, str]] = []  # reprints waiting for their time: (time, n, text)
    made = 0
    clock = float(T0)
    while made < documents:
        clock += step
        while pending and pending[0][0] <= clock and made < documents:
            at, n, text = heapq.heappop(pending)
            made += 1
            yield {"id": f"reprint-{n}", "time": at, "text": text}
        if made >= documents:
            break
        if rng.random() < reprint_share:
            continue  # this slot's document is a reprint, sent later
        text, _ = sentences[rng.randrange(len(sentences))]
        words = text.split()
        for i in rng.sample(range(len(words)), len(words) // 2):
            words[i] = vocabulary[rng.randrange(len(vocabulary))]
        name = rng.choices(companies, weights)[0][1]
        doc = {"id": f"doc-{made}", "time": int(clock), "text": f"{name} : {' '.join(words)}"}
        made += 1
        yield doc
        if rng.random() < reprint_share / (1 - reprint_share):
            heapq.heappush(pending, (int(clock) + rng.randint(60, 180 * 60), made, _edit(doc["text"], rng)))
