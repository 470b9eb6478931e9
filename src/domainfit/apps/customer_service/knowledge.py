"""The assistant's knowledge for retrieval: FAQ pairs and a folder of documents.

FAQ: a CSV/TSV/JSONL/Parquet file with a question and an answer column (``question`` and
``answer`` unless told otherwise) and an optional ``id`` column. Each pair is one document
(question and answer together are what the retriever matches); its answer is what the
assistant says.

Documents: every ``.md``, ``.markdown`` and ``.txt`` file under a folder, cut into passages:
a Markdown heading starts a new section, and a section is cut at blank lines into passages
of at most ``max_words`` words (a paragraph longer than that is cut at sentence ends, or
at ``max_words`` words when a sentence is longer). Each passage keeps its file, heading and
line, and the heading is prefixed to the text it is matched with.
"""

from __future__ import annotations

import re
from pathlib import Path

from ...core.errors import DataError, Problem

__all__ = ["read_faq", "read_documents", "DOC_SUFFIXES"]

DOC_SUFFIXES = (".md", ".markdown", ".txt")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")


def read_faq(path: str | Path, question_column: str = "question", answer_column: str = "answer",
             id_column: str | None = "id") -> list[dict]:
    """FAQ rows as corpus documents: ``id``, ``text`` (question + answer), ``question``,
    ``answer``, ``kind`` = ``faq``, ``source`` (file:line)."""
    from ...data import read_rows

    def to_text(value) -> str:
        return "" if value is None or (isinstance(value, float) and value != value) else str(value)

    file = str(path)
    docs, problems, seen = [], [], {}
    for line, row in read_rows(path):
        for column in (question_column, answer_column):
            if column not in row:
                raise DataError([Problem(file, None, column, f"the FAQ file has no column '{column}' (columns: "
                                         f"{', '.join(map(repr, row))})")])
        question, answer = to_text(row.get(question_column)).strip(), to_text(row.get(answer_column)).strip()
        if not question:
            problems.append(Problem(file, line, question_column, "the question is empty"))
        if not answer:
            problems.append(Problem(file, line, answer_column, "the answer is empty"))
        given = row.get(id_column) if id_column else None
        doc_id = f"faq-{str(given).strip()}" if given not in (None, "") else f"faq-{line}"
        if doc_id in seen:
            problems.append(Problem(file, line, id_column, f"the id {given!r} is used twice (first on line "
                                    f"{seen[doc_id]})"))
        seen[doc_id] = line
        docs.append({"id": doc_id, "text": f"{question}\n{answer}", "question": question, "answer": answer,
                     "kind": "faq", "source": f"{Path(path).name}:{line}", "title": question})
    if problems:
        raise DataError(problems)
    return docs


def _cut(paragraph: str, max_words: int) -> list[str]:
    words = paragraph.split()
    if len(words) <= max_words:
        return [paragraph]
    parts, current = [], []
    for sentence in _SENTENCE_END.split(paragraph):
        sw = sentence.split()
        while len(sw) > max_words:  # one very long sentence: cut by words
            if current:
                parts.append(" ".join(current))
                current = []
            parts.append(" ".join(sw[:max_words]))
            sw = sw[max_words:]
        if current and len(current) + len(sw) > max_words:
            parts.append(" ".join(current))
            current = []
        current += sw
    if current:
        parts.append(" ".join(current))
    return parts


def read_documents(folder: str | Path, max_words: int = 120) -> list[dict]:
    """Passages of every document under ``folder`` as corpus documents: ``id``, ``text``,
    ``answer`` (the passage), ``kind`` = ``document``, ``source`` (file:line), ``title``."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError([Problem(str(folder), None, None, "the documents folder does not exist")])
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in DOC_SUFFIXES)
    if not files:
        raise DataError([Problem(str(folder), None, None, f"no documents ({', '.join(DOC_SUFFIXES)}) in the folder")])
    docs = []
    for path in files:
        rel = path.relative_to(root).as_posix()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise DataError([Problem(str(path), None, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})")]) \
                from None
        heading, block, block_line, n = path.stem.replace("_", " ").replace("-", " "), [], 1, 0

        def flush():
            nonlocal n
            paragraph = " ".join(s.strip() for s in block).strip()
            for part in _cut(paragraph, max_words) if paragraph else []:
                n += 1
                docs.append({"id": f"doc-{rel}#{n}", "text": f"{heading}\n{part}", "answer": part,
                             "kind": "document", "source": f"{rel}:{block_line}", "title": heading})

        for number, line in enumerate(lines, 1):
            match = _HEADING.match(line)
            if match or not line.strip():
                flush()
                block = []
                if match:
                    heading = match.group(2) or heading
                continue
            if not block:
                block_line = number
            block.append(line)
        flush()
    if not docs:
        raise DataError([Problem(str(folder), None, None, "the documents hold no text")])
    return docs
