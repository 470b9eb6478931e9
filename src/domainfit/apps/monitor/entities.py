"""Entity linking: which companies a news item or post names, and whether it is about them.

An entities file lists the companies to watch (CSV, TSV or JSONL, UTF-8)::

    id,name,aliases,ticker
    nokia,Nokia Oyj,,NOKIA
    alphabet,Alphabet Inc.,Google,GOOGL

``aliases`` holds several names separated by ``|`` (a JSONL row may give a list).

How a text names an entity:

- **By name or alias**, as whole words. Company suffixes are optional ("Apple Inc." matches
  "Apple", "Apple Inc" and "Apple, Inc."; "Nokia Oyj" matches "Nokia"), possessives match
  ("Apple's"), and accents are optional ("Nestle" matches "Nestlé"). Case matters, so "an
  apple a day" does not name Apple Inc.; a line that is mostly upper-case (a shouted
  headline, "APPLE SHARES FALL") is matched without regard to case. Where two names
  overlap ("Bank of America" and "America") the longest wins.
- **By ticker**: a cashtag (``$AAPL``, any case) or an exchange tag ("(NASDAQ: AAPL)",
  "(NYSE:IBM)") always counts; a bare ticker counts when it is written in capitals, has
  two characters or more and a letter, and is not a common word (``IT``, ``ON``, ``KEY``...).
- **By a near-miss** of a name: a run of 1-4 capitalised words that did not match exactly
  is compared with every name and alias of 5 characters or more by ``rapidfuzz.fuzz.ratio``
  (100 * (1 - insertions and deletions / total length)) and accepted at ``fuzzy`` or above.
  At the default 90 a dropped letter in a long name passes ("Microsft" scores 94) but a
  wrong letter in a five-letter name does not ("Nokla" scores 80, as does the real word
  "Metro" against "Metso"). A word that merely extends a name ("Apples", "Nokian") is never
  a near-miss.

The relevance rule: a mention is a **subject** (relevance 1.0) when the entity is named in
the first sentence (the headline or lead: up to the first line break or sentence end), or
by a cashtag or exchange tag, or at least twice; otherwise it is a **passing mention**
(relevance 0.3).

    >>> linker = EntityLinker([Entity("apple", "Apple Inc.", ticker="AAPL"), Entity("nokia", "Nokia Oyj")])
    >>> [(m.entity, m.subject) for m in linker.link("Apple's shares rose. Nokia was flat.")]
    [('apple', True), ('nokia', False)]
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process

from ...core.errors import ConfigError, DataError, Problem
from ...data import read_rows

__all__ = ["Entity", "Mention", "EntityLinker", "read_entities", "check_entities", "SUBJECT_RELEVANCE",
           "PASSING_RELEVANCE"]

SUBJECT_RELEVANCE = 1.0
PASSING_RELEVANCE = 0.3
COLUMNS = ("id", "name", "aliases", "ticker")
_FORMATS = (".csv", ".tsv", ".jsonl", ".ndjson")
# Near-misses shorter than this are too often other words ("Kone"/"Kore", "Sampo"/"Sample").
_FUZZY_MIN_CHARS = 5
_FUZZY_MAX_WORDS = 4
_CONNECTORS = frozenset({"of", "and", "&"})
_POSSESSIVE = re.compile(r"['’]s$")
_PUNCTUATION = ".,;:!?\"'’()"

_SUFFIXES = ("Incorporated", "Inc", "Corporation", "Corp", "Company", "Co", "plc", "Plc", "Ltd", "Limited", "LLC",
             "AG", "S.A.", "SA", "N.V.", "NV", "SE", "Oyj", "Oy", "Abp", "ASA", "AB", "A/S", "AS", "Group",
             "Holdings", "Holding")
# Written-out tickers that are also everyday words or abbreviations: only a cashtag or an
# exchange tag links them.
_NOT_BARE_TICKERS = frozenset("""A I AI AM AN AS AT BE BY DO GO HE IF IN IS IT ME MY NO OF OK ON OR SO TO UP US WE
    ALL AND ANY ARE BIG BUY CAN CAR CEO CFO COO CTO DD EPS ETF EU EV FOR FY GDP HAS HOLD IPO KEY LOW MC NEW NOT NOW
    ONE OUT Q1 Q2 Q3 Q4 SEE SELL THE TWO UK USA USD EUR WAS YOU""".split())
_TICKER = re.compile(r"[A-Z0-9.\-]{1,10}")
# Words whose period does not end the first sentence (single letters, as in "U.S.", neither).
_ABBREVIATIONS = frozenset({"inc", "corp", "co", "ltd", "bros", "mr", "mrs", "ms", "dr", "st", "vs", "jr", "sr",
                            "prof", "approx", "est", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept",
                            "oct", "nov", "dec"})


@dataclass(frozen=True)
class Entity:
    """A company (or any named thing) to link: ``id`` is what mentions carry."""

    id: str
    name: str
    aliases: tuple[str, ...] = ()
    ticker: str | None = None

    def __post_init__(self):
        aliases = self.aliases.split("|") if isinstance(self.aliases, str) else self.aliases
        object.__setattr__(self, "aliases", tuple(a for a in aliases if a))

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "aliases": list(self.aliases), "ticker": self.ticker}


@dataclass(frozen=True)
class Mention:
    """One entity named in one text: whether the text is about it, and where it is named.

    ``spans`` are ``(start, end)`` character offsets of every match, in text order.
    """

    entity: str
    subject: bool
    relevance: float
    spans: tuple[tuple[int, int], ...]

    def to_dict(self) -> dict:
        return {"entity": self.entity, "subject": self.subject, "relevance": self.relevance,
                "spans": [list(span) for span in self.spans]}


# ---------------------------------------------------------------- names and their forms

_SUFFIX_TAIL = re.compile(r"(?:,?\s+(?:&\s*)?(?:" + "|".join(re.escape(s.rstrip(".")) for s in
                          sorted(_SUFFIXES, key=len, reverse=True)) + r")\.?|\s*&)\s*$", re.IGNORECASE)


def _strip_suffixes(name: str) -> str:
    """``name`` without trailing company suffixes ("JPMorgan Chase & Co." → "JPMorgan Chase");
    never strips a name down to nothing."""
    name = " ".join(name.split())
    while True:
        shorter = _SUFFIX_TAIL.sub("", name, count=1).strip()
        if shorter == name or not shorter:
            return name
        name = shorter


def _unaccented(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return unicodedata.normalize("NFC", "".join(ch for ch in decomposed if not unicodedata.combining(ch)))


def _normalise(text: str) -> str:
    """The key two names share when they are the same name: no suffix, possessive, accents,
    case or extra spaces ("Nestlé S.A." and "NESTLE" → "nestle")."""
    text = _POSSESSIVE.sub("", text.strip().strip(_PUNCTUATION))
    if text.isascii():
        return _strip_suffixes(text).lower()
    return _unaccented(_strip_suffixes(unicodedata.normalize("NFKC", text))).lower()


def _surface_forms(entity: Entity) -> list[str]:
    """The names an entity is found by: name and aliases without suffixes, with and without accents."""
    forms: list[str] = []
    for raw in (entity.name, *entity.aliases):
        base = _strip_suffixes(unicodedata.normalize("NFC", raw))
        forms += [base, _unaccented(base)]
    return list(dict.fromkeys(f for f in forms if f))


def _bare_ticker(ticker: str | None) -> bool:
    return (ticker is not None and len(ticker) >= 2 and any(ch.isalpha() for ch in ticker)
            and ticker not in _NOT_BARE_TICKERS)


# ---------------------------------------------------------------- reading and checking

def read_entities(path: str | Path) -> list[Entity]:
    """Read and check an entities file (see the module doc).

    Args:
        path: a ``.csv``, ``.tsv`` or ``.jsonl`` file with the columns id, name, aliases, ticker.

    Returns:
        The entities, in file order (tickers upper-cased).

    Raises:
        ConfigError: the file does not exist or has another extension.
        DataError: every problem found, with its line: bytes that are not UTF-8, a missing
            id or name column, an empty id or name, a repeated id or ticker, a name or alias
            shared by two entities, a bad ticker, or no entities at all.

    Example:
        >>> read_entities("recipes/finance_entities.csv")[0].id  # doctest: +SKIP
        'nokia'
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"the entities file {path} does not exist" if not path.exists()
                          else f"the entities path {path} is not a file")
    if path.suffix.lower() not in _FORMATS:
        raise ConfigError(f"cannot read entities from {path}: use a .csv, .tsv or .jsonl file")
    file = str(path)
    rows: list[tuple[int | None, dict]] = []
    problems: list[Problem] = []
    try:
        for line, row in read_rows(path):
            rows.append((line, row))
    except DataError as err:  # an empty file, or bytes that are not UTF-8: reported with the rest
        problems += err.problems
    if rows and path.suffix.lower() in (".csv", ".tsv"):
        missing = [c for c in ("id", "name") if c not in rows[0][1]]
        if missing:
            found = ", ".join(repr(c) for c in rows[0][1]) or "nothing"
            problems += [Problem(file, 1, c, f"the header has no '{c}' column (found {found}); the columns "
                                 f"are {','.join(COLUMNS)}") for c in missing]
            raise DataError(problems)
    entities, found = check_entities(rows, file)
    problems += found
    if not entities and not problems:
        problems.append(Problem(file, None, None, "the file holds no entities"))
    if problems:
        raise DataError(problems)
    return entities


def check_entities(rows: list[tuple[int | None, dict]], file: str) -> tuple[list[Entity], list[Problem]]:
    """Entities from ``(line, row)`` pairs of raw values, and every problem with them."""
    problems: list[Problem] = []
    parsed = [(line, entity) for line, row in rows
              if (entity := _parse_row(row, file, line, problems)) is not None]
    _check_unique(parsed, file, problems)
    return [entity for _, entity in parsed], problems


def _parse_row(row: dict, file: str, line: int | None, problems: list[Problem]) -> Entity | None:
    if not isinstance(row, dict):
        problems.append(Problem(file, line, None, f"expected an object with {', '.join(COLUMNS)}"))
        return None
    values = {c: _text(row.get(c)) for c in ("id", "name", "ticker")}
    bad = [c for c in ("id", "name") if not values[c]]
    problems += [Problem(file, line, c, f"the {c} is missing or empty") for c in bad]
    ticker = values["ticker"].upper() or None
    if ticker is not None and not _TICKER.fullmatch(ticker):
        bad.append("ticker")
        problems.append(Problem(file, line, "ticker", f"the ticker {values['ticker']!r} is not 1-10 letters, "
                                "digits, '.' or '-'"))
    if bad:
        return None
    aliases = row.get("aliases")
    aliases = aliases if isinstance(aliases, (list, tuple)) else _text(aliases).split("|")
    aliases = tuple(dict.fromkeys(a for a in (_text(a) for a in aliases) if a))
    return Entity(values["id"], values["name"], aliases, ticker)


def _text(value: Any) -> str:
    return "" if value is None else " ".join(str(value).split())


def _check_unique(parsed: list[tuple[int | None, Entity]], file: str, problems: list[Problem]) -> None:
    """Ids and tickers appear once; a name or alias points to one entity."""
    first_id: dict[str, int | None] = {}
    first_ticker: dict[str, tuple[str, int | None]] = {}
    owner: dict[str, tuple[str, int | None]] = {}
    for line, entity in parsed:
        if entity.id in first_id:
            problems.append(Problem(file, line, "id", f"the id {entity.id!r} is used again (first on "
                                    f"{_where(first_id[entity.id], file)})"))
            continue
        first_id[entity.id] = line
        if entity.ticker is not None:
            other = first_ticker.setdefault(entity.ticker, (entity.id, line))
            if other[0] != entity.id:
                problems.append(Problem(file, line, "ticker", f"the ticker {entity.ticker!r} of {entity.id!r} also "
                                        f"belongs to {other[0]!r} ({_where(other[1], file)})"))
        for column, raw in [("name", entity.name)] + [("aliases", a) for a in entity.aliases]:
            other = owner.setdefault(_normalise(raw), (entity.id, line))
            if other[0] != entity.id:
                reason = (f"{raw!r} of {entity.id!r} ({_where(line, file)}) is also a name of {other[0]!r} "
                          f"({_where(other[1], file)}); a name or alias must belong to one entity")
                problems.append(Problem(file, line, column, reason))


def _where(line: int | None, file: str) -> str:
    """Where a row is, in the words a reason uses: a file's lines, or in-memory entries from 0."""
    if line is None:
        return "an unknown place"
    return f"entry {line}" if file.startswith("<") else f"line {line}"


# ---------------------------------------------------------------- the linker

def _trie_pattern(words: list[str]) -> str:
    """One regex alternative for many words, as a trie: fast, and the longest word wins."""
    trie: dict = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}
    return _node_pattern(trie)


def _node_pattern(node: dict) -> str:
    branches = [(r"\s" if ch == " " else re.escape(ch)) + _node_pattern(child)
                for ch, child in sorted(node.items()) if ch]
    if not branches:
        return ""
    if len(branches) == 1 and "" not in node:
        return branches[0]
    group = "(?:" + "|".join(branches) + ")"
    return group + "?" if "" in node else group  # greedy: the longer word is tried first


def _suffix_pattern() -> str:
    words = {s for suffix in _SUFFIXES for s in (suffix, suffix.upper())}
    parts = [re.escape(w.rstrip(".")) + r"(?!\w)\.?" for w in sorted(words, key=len, reverse=True)]
    # Case-sensitive even in a case-blind pattern, so "Apple company" keeps "company" out.
    return r"(?-i:(?:,?[ \t]+(?:&[ \t]?)?(?:" + "|".join(parts) + r")){0,3})"


# A cashtag may be in any case; an exchange tag is written as exchanges write it, in capitals.
_CASHTAG = r"(?<![\w$])\$(?P<cash>[A-Za-z][A-Za-z0-9]*(?:[.\-][A-Za-z0-9]+)*)(?![A-Za-z0-9])"
_LISTED = r"[A-Z0-9]+(?:[.\-][A-Z0-9]+)*"
_EXCHANGE_TAG = rf"(?-i:\([A-Z][A-Za-z .]{{0,29}}:[ \t]*(?P<listed>{_LISTED})[ \t]*\))"
_EXCHANGE_PREFIX = (r"(?<![\w:])(?-i:(?:NASDAQ|Nasdaq|NYSE|LSE|XETRA|TSX|ASX|OMXH|OMXS|OMXC|HEL|STO|TYO|TSE|KRX|SIX)"
                    rf"[ \t]?:[ \t]?(?P<prefixed>{_LISTED}))(?!\w)")
_CAPITALISED_WORD = r"[A-ZÀ-ÖØ-Þ][\w&'’.\-]*"
_CAPITALISED_RUN = re.compile(rf"(?<![\w$]){_CAPITALISED_WORD}(?:[ \t](?:(?:of|and|&)[ \t])?{_CAPITALISED_WORD})*")
_RUN_WORD = re.compile(r"[^ \t]+")
_SENTENCE_END = re.compile(r"\n|[.!?]+(?=[\"'’”)\]]*(?:\s|$))")
_LAST_WORD = re.compile(r"(\w+)\W*$")


class EntityLinker:
    """Finds the entities a text names (see the module doc for the rules).

    Args:
        entities: the entities to link (e.g. from :func:`read_entities`).
        fuzzy: the ``rapidfuzz.fuzz.ratio`` score (0-100) a near-miss of a name needs;
            100 or more turns near-misses off.

    Raises:
        DataError: two entities share an id, ticker, name or alias (lines are list indexes).
        ConfigError: ``fuzzy`` is not a number from 0 up.

    Example:
        >>> linker = EntityLinker(read_entities("recipes/finance_entities.csv"))  # doctest: +SKIP
        >>> [m.entity for m in linker.link("$NOKIA up 3% after Ericsson's warning")]  # doctest: +SKIP
        ['nokia', 'ericsson']
    """

    def __init__(self, entities: list[Entity], *, fuzzy: int = 90):
        if isinstance(fuzzy, bool) or not isinstance(fuzzy, (int, float)) or fuzzy < 0:
            raise ConfigError(f"fuzzy must be a score from 0 to 100 (100 turns near-misses off), not {fuzzy!r}")
        checked, problems = check_entities([(i, e.to_dict()) for i, e in enumerate(entities)], "<entities>")
        if problems:
            raise DataError(problems)
        self.fuzzy = fuzzy
        self.entities: dict[str, Entity] = {e.id: e for e in checked}
        self._index()

    def _index(self) -> None:
        """Build the lookups and the one compiled pattern that finds every name and tag."""
        self._exact: dict[str, str] = {}      # a form as written → id
        self._caseless: dict[str, str] = {}   # a form in lower case → id (shouted lines only)
        self._tickers: dict[str, str] = {}    # ticker (or its unique root, ERIC for ERIC-B) → id
        fuzzy_forms: dict[str, str] = {}
        for entity in self.entities.values():
            for form in _surface_forms(entity):
                self._exact.setdefault(form, entity.id)
                self._caseless.setdefault(form.lower(), entity.id)
                if len(_normalise(form)) >= _FUZZY_MIN_CHARS:
                    fuzzy_forms.setdefault(_normalise(form), entity.id)
        roots: dict[str, set[str]] = {}
        for entity in self.entities.values():
            if entity.ticker:
                self._tickers[entity.ticker] = entity.id
                roots.setdefault(re.split(r"[.\-]", entity.ticker)[0], set()).add(entity.id)
                if _bare_ticker(entity.ticker):
                    self._exact.setdefault(entity.ticker, entity.id)  # a name of another entity wins
        for root, ids in roots.items():
            if len(ids) == 1 and len(root) >= 2:
                self._tickers.setdefault(root, ids.pop())
        self._near_misses = _NearMisses(fuzzy_forms, self.fuzzy) if self.fuzzy < 100 and fuzzy_forms else None
        names = _trie_pattern(sorted({form.lower() for form in self._exact}))
        self._pattern = re.compile(f"{_CASHTAG}|{_EXCHANGE_TAG}|{_EXCHANGE_PREFIX}|"
                                   rf"(?<!\w)(?P<name>{names})(?!\w){_suffix_pattern()}", re.IGNORECASE)

    def link(self, text: str) -> list[Mention]:
        """The entities ``text`` names: at most one :class:`Mention` each, by relevance then id.

        Example:
            >>> EntityLinker([Entity("nokia", "Nokia Oyj", ticker="NOKIA")]).link("NOKIA CUTS JOBS")[0].spans
            ((0, 5),)
        """
        if not text:
            return []
        hits: dict[str, list[tuple[int, int]]] = {}
        tagged: set[str] = set()
        self._find_exact(text, hits, tagged)
        if self._near_misses is not None:
            covered = [span for spans in hits.values() for span in spans]
            for entity_id, span in self._near_misses.find(text, covered):
                hits.setdefault(entity_id, []).append(span)
        if not hits:
            return []
        lead_end = _lead_end(text)
        mentions = []
        for entity_id, spans in hits.items():
            spans.sort()
            subject = entity_id in tagged or len(spans) >= 2 or spans[0][0] < lead_end
            mentions.append(Mention(entity_id, subject, SUBJECT_RELEVANCE if subject else PASSING_RELEVANCE,
                                    tuple(spans)))
        mentions.sort(key=lambda m: (-m.relevance, m.entity))
        return mentions

    def link_many(self, texts: list[str]) -> list[list[Mention]]:
        """:meth:`link` for each text, in order."""
        return [self.link(text) for text in texts]

    def _find_exact(self, text: str, hits: dict[str, list], tagged: set[str]) -> None:
        """Names, aliases, bare tickers, cashtags and exchange tags, left to right, longest first."""
        shouted: dict[int, bool] = {}
        pos = 0
        while (m := self._pattern.search(text, pos)) is not None:
            name = m.group("name")
            if name is None:
                group = "cash" if m.group("cash") else "listed" if m.group("listed") else "prefixed"
                entity_id = self._tickers.get(m.group(group).upper())
                if entity_id is not None:
                    hits.setdefault(entity_id, []).append(m.span() if group == "cash" else m.span(group))
                    tagged.add(entity_id)
                pos = m.end()
                continue
            entity_id = self._exact.get(name) or self._exact.get(" ".join(name.split()))
            if entity_id is None and _is_shouted(text, m.start(), shouted):
                entity_id = self._caseless.get(" ".join(name.lower().split()))
            if entity_id is None:
                pos = m.start() + 1  # e.g. "apple" in lower case: a shorter name may still start here
                continue
            hits.setdefault(entity_id, []).append(m.span())
            pos = m.end()

    def to_dict(self) -> dict:
        """Plain JSON-able settings and entities (a bundle's ``entities.json``)."""
        return {"version": 1, "fuzzy": self.fuzzy, "entities": [e.to_dict() for e in self.entities.values()]}

    @classmethod
    def from_dict(cls, d: dict) -> EntityLinker:
        """The linker :meth:`to_dict` describes.

        Raises:
            DataError: the entities are missing or not valid (lines are list indexes).
        """
        if not isinstance(d, dict) or not isinstance(d.get("entities"), list):
            raise DataError([Problem("<entities>", None, "entities", "expected an object with a list of entities")])
        entities, problems = check_entities(list(enumerate(d["entities"])), "<entities>")
        if problems:
            raise DataError(problems)
        return cls(entities, fuzzy=d.get("fuzzy", 90))


class _NearMisses:
    """Near-misses of names among runs of capitalised words that no exact match covers.

    Most capitalised words belong to no name ("Fed", "Says"), so every word is first compared
    with the words names are made of, in one rapidfuzz call per text; only windows of 1-4
    words that are all close to name words (or are suffixes, "of", "&") are compared with
    the whole names.
    """

    def __init__(self, forms: dict[str, str], fuzzy: float):
        self.fuzzy = fuzzy
        self.forms, self.ids = list(forms), list(forms.values())
        self.free = _CONNECTORS | {s.lower().rstrip(".") for s in _SUFFIXES}
        self.name_words = {w for form in self.forms for w in form.split()} - self.free
        self.fuzzy_words = sorted(w for w in self.name_words if len(w) >= 4)
        # A name whose one word has a slip scores higher than that word alone ("Goldmn Sachs"
        # 96, "Goldmn" 92), so words are let through at a lower score than whole names.
        self.word_cutoff = max(0.0, fuzzy - 15)

    def find(self, text: str, covered: list[tuple[int, int]]) -> list[tuple[str, tuple[int, int]]]:
        """``(entity id, span)`` of each near-miss, longest windows first, without overlaps."""
        segments = _uncovered_runs(text, covered)
        if not segments:
            return []
        known = self._known_words({key for segment in segments for _, _, key in segment})
        found: list[tuple[str, tuple[int, int]]] = []
        seen: dict[str, str | None] = {}
        for segment in segments:
            found += self._match_windows(text, segment, known, seen)
        return found

    def _known_words(self, keys: set[str]) -> set[str]:
        known = {k for k in keys if k in self.name_words or k in self.free}
        rest = [k for k in keys if k not in known and len(k) >= 4]
        if rest and self.fuzzy_words:
            scores = process.cdist(rest, self.fuzzy_words, scorer=fuzz.ratio, score_cutoff=self.word_cutoff,
                                   dtype=np.uint8)
            known.update(k for k, close in zip(rest, scores.any(axis=1)) if close)
        return known

    def _match_windows(self, text: str, words: list[tuple[int, int, str]], known: set[str],
                       seen: dict[str, str | None]) -> list[tuple[str, tuple[int, int]]]:
        """Windows of words that are all known and not all suffixes or connectors."""
        useful = [key in known for _, _, key in words]
        free = [key in self.free for _, _, key in words]
        found, used = [], set()
        for size in range(min(_FUZZY_MAX_WORDS, len(words)), 0, -1):
            for first in range(len(words) - size + 1):
                chosen = range(first, first + size)
                start, end = words[first][0], words[chosen[-1]][1]
                if (not all(useful[first:first + size]) or all(free[first:first + size]) or used.intersection(chosen)
                        or not (text[start].isupper() and text[words[chosen[-1]][0]].isupper())):
                    continue
                entity_id = self._near_miss(text[start:end], seen)
                if entity_id is not None:
                    found.append((entity_id, (start, start + len(_trim(text[start:end])))))
                    used.update(chosen)
        return found

    def _near_miss(self, phrase: str, seen: dict[str, str | None]) -> str | None:
        query = _normalise(phrase)
        if query not in seen:
            seen[query] = None
            if len(query) >= _FUZZY_MIN_CHARS:
                best = process.extractOne(query, self.forms, scorer=fuzz.ratio, score_cutoff=self.fuzzy)
                # "Apples" or "Nokian" only extend a name: other words, not slips.
                if best is not None and not (query.startswith(best[0]) and query != best[0]):
                    seen[query] = self.ids[best[2]]
        return seen[query]


def _uncovered_runs(text: str, covered: list[tuple[int, int]]) -> list[list[tuple[int, int, str]]]:
    """Runs of capitalised words as ``(start, end, key)``, split where an exact match covers a word."""
    segments: list[list[tuple[int, int, str]]] = []
    for run in _CAPITALISED_RUN.finditer(text):
        segment: list[tuple[int, int, str]] = []
        offset = run.start()
        for w in _RUN_WORD.finditer(run.group()):
            start, end = offset + w.start(), offset + w.end()
            if covered and any(s < end and start < e for s, e in covered):
                segments.append(segment)
                segment = []
            else:
                segment.append((start, end, _word_key(w.group())))
        segments.append(segment)
    return [segment for segment in segments if segment]


def _word_key(word: str) -> str:
    key = _POSSESSIVE.sub("", word.strip(_PUNCTUATION)).lower()
    return key if key.isascii() else _unaccented(key)


def _trim(phrase: str) -> str:
    """A matched phrase without trailing punctuation or possessive."""
    return _POSSESSIVE.sub("", phrase.rstrip(_PUNCTUATION))


def _is_shouted(text: str, at: int, cache: dict[int, bool]) -> bool:
    """Whether the line holding ``at`` is mostly upper-case (a headline in capitals)."""
    start = text.rfind("\n", 0, at) + 1
    if start not in cache:
        end = text.find("\n", at)
        line = text[start:] if end < 0 else text[start:end]
        upper, lower = sum(map(str.isupper, line)), sum(map(str.islower, line))
        cache[start] = upper >= 3 and upper >= 2 * lower
    return cache[start]


def _lead_end(text: str) -> int:
    """Where the first sentence ends: the first line break or sentence end that is not an
    abbreviation ("Inc.", "U.S.", "Mr.")."""
    for m in _SENTENCE_END.finditer(text):
        before = text[:m.start()]
        if not before.strip():
            continue
        if m.group() != "\n":
            word = _LAST_WORD.search(before[-20:])
            if word is not None and (len(word.group(1)) == 1 or word.group(1).lower() in _ABBREVIATIONS):
                continue
        return m.start()
    return len(text)
