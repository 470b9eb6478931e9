"""Reprint clustering: MinHash signatures (stable, close to the true Jaccard) and the
time-windowed Deduplicator (reprints join, unrelated texts and late reprints do not,
memory stays bounded)."""

from __future__ import annotations

import numpy as np
import pytest

from domainfit.apps.monitor.dedup import (EMPTY_SIGNATURE_VALUE, Deduplicator, normalize, signature,
                                          similarity)

DAY = 86400.0
ARTICLE = ("Acme Corp raised its full-year profit forecast on Tuesday after strong demand for its industrial "
           "sensors lifted third-quarter revenue by 12 percent, sending its shares up 6 percent in early trading "
           "in New York. The company now expects earnings of 4.10 to 4.25 dollars a share, above the 3.95 dollars "
           "analysts had expected, and said orders from European carmakers had recovered faster than planned. "
           "Chief executive Maria Lopez told analysts on a call that the backlog stood at a record.")
REPRINT = ("Reuters: " + ARTICLE.replace("strong demand", "robust demand").replace(",", " ;")
           + " (Reporting by Jane Doe; Editing by John Roe)")
SAME_COMPANY = ("Acme Corp said on Friday that its chief financial officer would step down at the end of the year "
                "to pursue other opportunities, and that a search for a successor had begun.")


def _true_jaccard(a: str, b: str, shingle: int = 5) -> float:
    def shingles(text):
        norm = normalize(text)
        return {norm[i:i + shingle] for i in range(len(norm) - shingle + 1)}

    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb)


def test_normalize_lowercases_strips_punctuation_and_collapses_space():
    assert normalize("  Reuters:\tACME,  Inc.\n(Reporting by X) ") == "reuters acme inc reporting by x"


def test_signature_is_deterministic_and_pinned():
    sig = signature(ARTICLE)
    assert sig.shape == (64,) and sig.dtype == np.uint32
    assert np.array_equal(sig, signature(ARTICLE))
    # pinned: a change of shingling, hashing or coefficients must be noticed (it would
    # make stored signatures incomparable with new ones)
    assert signature("Acme Corp raised its forecast")[:4].tolist() == [202672125, 3009777, 223477349, 44879733]
    assert signature("x", num_perm=128).shape == (128,)


def test_estimated_similarity_is_close_to_true_jaccard():
    pairs = [(ARTICLE, REPRINT), (ARTICLE, SAME_COMPANY), (ARTICLE, ARTICLE[:300]),
             ("Oil prices fell on Monday as supply fears eased.", "Oil prices rose on Monday as supply fears grew.")]
    for a, b in pairs:
        estimate = similarity(signature(a, num_perm=256), signature(b, num_perm=256))
        assert abs(estimate - _true_jaccard(a, b)) < 0.1, (a[:30], b[:30])
    assert similarity(signature(ARTICLE), signature(ARTICLE.upper() + " !!")) == 1.0


def test_short_and_empty_texts():
    assert similarity(signature("Acm"), signature("ACM!")) == 1.0  # shorter than a shingle: the whole text
    assert similarity(signature("Acm"), signature("Abc")) < 0.1
    empty = signature(" ... ")
    assert np.all(empty == EMPTY_SIGNATURE_VALUE)
    assert similarity(empty, signature("")) == 0.0  # empty matches nothing, not even empty
    dedup = Deduplicator()
    assert dedup.add("e1", "", 0.0) == ("e1", 0.0) and dedup.add("e2", "!", 1.0) == ("e2", 0.0)


def test_reprint_joins_the_original_and_unrelated_news_does_not():
    dedup = Deduplicator()
    assert dedup.add("orig", ARTICLE, 0.0) == ("orig", 0.0)
    cluster, score = dedup.add("reprint", REPRINT, 3600.0)
    assert cluster == "orig" and score >= 0.7
    assert dedup.add("other", SAME_COMPANY, 7200.0) == ("other", 0.0)
    # a reprint of the reprint keeps the story's first id
    assert dedup.add("again", REPRINT + " Updated.", 9000.0)[0] == "orig"
    assert len(dedup) == 4


def test_reprint_after_the_window_starts_a_new_story():
    dedup = Deduplicator(window_seconds=2 * DAY)
    dedup.add("orig", ARTICLE, 0.0)
    assert dedup.add("late", REPRINT, 2 * DAY + 1) == ("late", 0.0)
    assert dedup.add("later", REPRINT, 2.5 * DAY)[0] == "late"


def test_out_of_order_times_only_match_within_the_window():
    dedup = Deduplicator(window_seconds=100.0)
    dedup.add("new", ARTICLE, 1000.0)
    assert dedup.add("slightly-late", REPRINT, 950.0)[0] == "new"
    assert dedup.add("very-late", REPRINT, 800.0) == ("very-late", 0.0)  # 200 s from both


def test_eviction_keeps_memory_bounded():
    rng = np.random.default_rng(0)
    words, jitter = rng.integers(0, 2000, size=(3000, 10)), rng.uniform(-2, 2, size=3000)
    dedup = Deduplicator(window_seconds=100.0)
    sizes = []
    for i in range(3000):  # about one text a second, slightly out of order
        dedup.add(str(i), " ".join(f"w{w}" for w in words[i]), time=i + jitter[i])
        sizes.append(len(dedup))
    assert max(sizes) <= 106 and sizes[-1] >= 95


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="divide"):
        Deduplicator(num_perm=64, bands=10)
    with pytest.raises(ValueError, match="shape"):
        Deduplicator().add_signature("a", signature("text", num_perm=32), 0.0)
    with pytest.raises(ValueError, match="shapes"):
        similarity(signature("a"), signature("a", num_perm=32))
