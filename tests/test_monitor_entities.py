"""The monitor's entity linker: names, suffixes, tickers, near-misses, relevance, files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domainfit.apps.monitor.entities import (PASSING_RELEVANCE, SUBJECT_RELEVANCE, Entity, EntityLinker, Mention,
                                             read_entities)
from domainfit.core.errors import ConfigError, DataError

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "finance_entities.csv"

ENTITIES = [
    Entity("apple", "Apple Inc.", ticker="AAPL"),
    Entity("nokia", "Nokia Oyj", ticker="NOKIA"),
    Entity("microsoft", "Microsoft Corporation", ticker="MSFT"),
    Entity("bofa", "Bank of America Corporation", ("BofA",), "BAC"),
    Entity("america-movil", "America Movil", ("America",), "AMX"),
    Entity("gartner", "Gartner Inc.", ticker="IT"),
    Entity("nestle", "Nestlé S.A.", ticker="NESN"),
    Entity("tesla", "Tesla Inc.", ticker="TSLA"),
]


@pytest.fixture(scope="module")
def linker() -> EntityLinker:
    return EntityLinker(ENTITIES)


def linked(linker: EntityLinker, text: str) -> dict[str, Mention]:
    return {m.entity: m for m in linker.link(text)}


def matched_text(text: str, mention: Mention) -> list[str]:
    return [text[start:end] for start, end in mention.spans]


# ---------------------------------------------------------------- names


@pytest.mark.parametrize("text, entity, surface", [
    ("Apple reported record sales", "apple", "Apple"),
    ("Apple Inc reported record sales", "apple", "Apple Inc"),
    ("Apple Inc. reported record sales", "apple", "Apple Inc."),
    ("Apple, Inc. reported record sales", "apple", "Apple, Inc."),
    ("Shares of Nokia fell", "nokia", "Nokia"),
    ("Nokia Oyj cut jobs", "nokia", "Nokia Oyj"),
])
def test_company_suffixes_are_optional(linker, text, entity, surface):
    mentions = linked(linker, text)
    assert list(mentions) == [entity]
    assert matched_text(text, mentions[entity]) == [surface]


def test_a_possessive_matches_the_name_alone(linker):
    text = "Apple's margins rose"
    assert matched_text(text, linked(linker, text)["apple"]) == ["Apple"]


def test_a_shouted_headline_matches_without_regard_to_case(linker):
    assert list(linked(linker, "APPLE SHARES FALL AFTER WEAK OUTLOOK")) == ["apple"]
    assert list(linked(linker, "NESTLE PROFIT BEATS FORECASTS")) == ["nestle"]


def test_a_lower_case_word_does_not_match_a_capitalised_name(linker):
    assert linker.link("an apple a day keeps the doctor away") == []
    assert linker.link("Eat an apple and a nokia-branded snack") == []


def test_accents_are_optional(linker):
    assert list(linked(linker, "Nestle raised prices")) == ["nestle"]
    assert list(linked(linker, "Nestlé raised prices")) == ["nestle"]


def test_the_longest_of_overlapping_names_wins(linker):
    text = "Bank of America raised its dividend"
    mentions = linked(linker, text)
    assert list(mentions) == ["bofa"]
    assert matched_text(text, mentions["bofa"]) == ["Bank of America"]
    assert list(linked(linker, "America Movil and America")) == ["america-movil"]


def test_a_name_inside_a_longer_word_does_not_match(linker):
    assert linker.link("Applebee's and Teslas") == []


# ---------------------------------------------------------------- tickers


@pytest.mark.parametrize("text", ["Buying more $AAPL today", "buying more $aapl!", "$AAPL.", "Long $AAPL, short $X"])
def test_a_cashtag_always_links_and_makes_a_subject(linker, text):
    mention = linked(linker, text)["apple"]
    assert mention.subject and mention.relevance == SUBJECT_RELEVANCE


def test_a_cashtag_must_end_at_a_non_letter(linker):
    assert linker.link("the $AAPLx token and $5 coffee") == []


def test_a_bare_ticker_links_only_in_capitals_and_when_not_a_common_word(linker):
    assert list(linked(linker, "MSFT and TSLA closed higher")) == ["microsoft", "tesla"]
    assert linker.link("msft closed higher") == []
    assert linker.link("IT spending is up and ON balance it is fine") == []  # Gartner's ticker is IT
    assert list(linked(linker, "buying $IT today")) == ["gartner"]


@pytest.mark.parametrize("text", ["Apple Inc. (NASDAQ: AAPL) today announced", "(NASDAQ:AAPL) announced",
                                  "NASDAQ:AAPL is up"])
def test_an_exchange_tag_links_the_ticker(linker, text):
    assert "apple" in linked(linker, text)


def test_an_exchange_tag_links_a_ticker_that_is_a_common_word(linker):
    assert list(linked(linker, "Gartner (NYSE: IT) said")) == ["gartner"]


# ---------------------------------------------------------------- near-misses


def test_a_misspelt_long_name_is_a_near_miss(linker):
    text = "Microsft shares fell after the event"
    mention = linked(linker, text)["microsoft"]
    assert matched_text(text, mention) == ["Microsft"]


def test_a_wrong_letter_in_a_five_letter_name_needs_a_lower_fuzzy_score():
    # fuzz.ratio("nokla", "nokia") is 80: a near-miss at fuzzy=80, not at the default 90.
    assert EntityLinker(ENTITIES).link("Nokla cut jobs") == []
    assert [m.entity for m in EntityLinker(ENTITIES, fuzzy=80).link("Nokla cut jobs")] == ["nokia"]


def test_short_words_and_extended_names_are_never_near_misses():
    loose = EntityLinker(ENTITIES, fuzzy=60)
    assert loose.link("Tesl and Appl rose") == []        # under 5 characters
    assert loose.link("Apples and Nokias rose") == []    # a name plus letters is another word


def test_lower_case_words_are_not_near_misses():
    assert EntityLinker(ENTITIES, fuzzy=80).link("microsft and nokla rose") == []


def test_fuzzy_100_turns_near_misses_off():
    assert EntityLinker(ENTITIES, fuzzy=100).link("Microsft shares fell") == []


def test_fuzzy_must_be_a_score():
    with pytest.raises(ConfigError, match="fuzzy"):
        EntityLinker(ENTITIES, fuzzy=-1)


# ---------------------------------------------------------------- relevance


def test_an_entity_in_the_first_sentence_is_a_subject_and_a_later_one_a_passing_mention(linker):
    mentions = linker.link("Apple Inc. reported record sales. Nokia was flat.")
    assert [(m.entity, m.subject, m.relevance) for m in mentions] == [
        ("apple", True, SUBJECT_RELEVANCE), ("nokia", False, PASSING_RELEVANCE)]


def test_a_headline_line_is_the_first_sentence(linker):
    mentions = linked(linker, "Nokia beats forecasts\nAnalysts compared it with Apple")
    assert mentions["nokia"].subject and not mentions["apple"].subject


def test_abbreviations_do_not_end_the_first_sentence(linker):
    mentions = linked(linker, "U.S. regulators fined Apple on Monday. Nokia said nothing.")
    assert mentions["apple"].subject and not mentions["nokia"].subject
    assert not linked(linker, "Jobs were cut, said the company. Nokia fell.")["nokia"].subject


def test_an_entity_named_twice_is_a_subject(linker):
    mention = linked(linker, "Markets were calm. Nokia rose. Later Nokia fell.")["nokia"]
    assert mention.subject and len(mention.spans) == 2


def test_a_cashtag_late_in_the_text_makes_a_subject(linker):
    assert linked(linker, "Markets were calm today. Some bought $NOKIA.")["nokia"].subject


def test_one_mention_per_entity_sorted_by_relevance_then_id(linker):
    text = "Tesla and Apple rose. Nokia and Microsoft fell. Apple again."
    assert [m.entity for m in linker.link(text)] == ["apple", "tesla", "microsoft", "nokia"]


def test_link_many_links_each_text(linker):
    assert [[m.entity for m in ms] for ms in linker.link_many(["Nokia up", "", "nothing here"])] == [["nokia"], [], []]


def test_mentions_are_plain_json(linker):
    data = [m.to_dict() for m in linker.link("Apple up")]
    assert json.loads(json.dumps(data)) == [{"entity": "apple", "subject": True, "relevance": 1.0, "spans": [[0, 5]]}]


def test_to_dict_and_from_dict_give_the_same_links(linker):
    texts = ["Apple Inc. (NASDAQ: AAPL) rose. Nokia fell.", "Microsft shares", "$IT and Bank of America"]
    copy = EntityLinker.from_dict(json.loads(json.dumps(linker.to_dict())))
    assert copy.entities == linker.entities
    assert copy.link_many(texts) == linker.link_many(texts)


def test_aliases_given_as_one_string_are_split_like_the_file_column():
    assert Entity("alphabet", "Alphabet Inc.", "Google|GOOG").aliases == ("Google", "GOOG")


def test_two_entities_with_one_alias_are_refused_in_code_too():
    with pytest.raises(DataError) as caught:
        EntityLinker([Entity("nokia", "Nokia Oyj"), Entity("nokia2", "NOKIA Corp")])
    [problem] = caught.value.problems
    assert problem.line == 1 and "'NOKIA Corp' of 'nokia2' (entry 1)" in problem.reason
    assert "'nokia' (entry 0)" in problem.reason


# ---------------------------------------------------------------- the entities file


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_a_good_file_reads_with_aliases_and_upper_case_tickers(tmp_path):
    path = write(tmp_path, "e.csv", "\ufeffid,name,aliases,ticker\nalphabet,Alphabet Inc.,Google|GOOG Inc,googl\n"
                                    "nokia,Nokia Oyj,,\n")
    assert read_entities(path) == [Entity("alphabet", "Alphabet Inc.", ("Google", "GOOG Inc"), "GOOGL"),
                                   Entity("nokia", "Nokia Oyj", (), None)]


def test_tsv_and_jsonl_files_read(tmp_path):
    tsv = write(tmp_path, "e.tsv", "id\tname\taliases\tticker\nnokia\tNokia Oyj\tNokia Corp\tNOKIA\n")
    jsonl = write(tmp_path, "e.jsonl", '{"id": "nokia", "name": "Nokia Oyj", "aliases": ["Nokia Corp"], '
                                       '"ticker": "NOKIA"}\n')
    assert read_entities(tsv) == read_entities(jsonl) == [Entity("nokia", "Nokia Oyj", ("Nokia Corp",), "NOKIA")]


def test_every_problem_is_reported_with_its_line(tmp_path):
    path = write(tmp_path, "e.csv", "id,name,aliases,ticker\n"
                                    "nokia,Nokia Oyj,,NOKIA\n"       # 2
                                    "nokia,Nokia Again,,\n"          # 3: the id again
                                    "nokia-corp,Nokia Corporation,,\n"  # 4: "Nokia" once more
                                    "apple,Apple Inc.,,AAPL$\n"      # 5: a bad ticker
                                    "nameless,,,\n"                  # 6: no name
                                    "ms,Microsoft,MSFT Corp,TOOLONGTICKER\n")  # 7: a ticker too long
    with pytest.raises(DataError) as caught:
        read_entities(path)
    problems = {(p.line, p.column): p.reason for p in caught.value.problems}
    assert set(problems) == {(3, "id"), (4, "name"), (5, "ticker"), (6, "name"), (7, "ticker")}
    assert "first on line 2" in problems[(3, "id")]
    assert "'nokia-corp' (line 4)" in problems[(4, "name")] and "'nokia' (line 2)" in problems[(4, "name")]
    assert all(p.file == str(path) for p in caught.value.problems)


def test_an_alias_shared_by_two_entities_names_both(tmp_path):
    path = write(tmp_path, "e.csv", "id,name,aliases,ticker\nalphabet,Alphabet Inc.,Google,\n"
                                    "google-llc,Google LLC,,\n")
    with pytest.raises(DataError) as caught:
        read_entities(path)
    [problem] = caught.value.problems
    assert problem.line == 3 and "'alphabet' (line 2)" in problem.reason and "'google-llc'" in problem.reason


def test_a_ticker_of_two_entities_is_refused(tmp_path):
    path = write(tmp_path, "e.csv", "id,name,aliases,ticker\na,Alpha,,ABC\nb,Beta,,abc\n")
    with pytest.raises(DataError) as caught:
        read_entities(path)
    assert [(p.line, p.column) for p in caught.value.problems] == [(3, "ticker")]


def test_a_missing_name_column_is_reported_on_the_header(tmp_path):
    path = write(tmp_path, "e.csv", "id,title,ticker\nnokia,Nokia,NOKIA\n")
    with pytest.raises(DataError) as caught:
        read_entities(path)
    assert [(p.line, p.column) for p in caught.value.problems] == [(1, "name")]


def test_a_jsonl_line_without_a_name_is_reported(tmp_path):
    path = write(tmp_path, "e.jsonl", '{"id": "nokia", "name": "Nokia"}\n{"id": "apple"}\n')
    with pytest.raises(DataError) as caught:
        read_entities(path)
    assert [(p.line, p.column) for p in caught.value.problems] == [(2, "name")]


@pytest.mark.parametrize("text", ["", "id,name,aliases,ticker\n"])
def test_an_empty_file_is_refused(tmp_path, text):
    with pytest.raises(DataError, match="empty"):
        read_entities(write(tmp_path, "e.csv", text))


def test_a_file_that_is_not_utf8_is_refused_naming_the_file(tmp_path):
    path = write(tmp_path, "e.csv", "id,name,aliases,ticker\nnestle,Nestlé S.A.,,NESN\n".encode("latin-1"))
    with pytest.raises(DataError) as caught:
        read_entities(path)
    [problem] = caught.value.problems
    assert problem.file == str(path) and problem.line == 2 and "UTF-8" in problem.reason


def test_problems_before_bad_bytes_are_reported_with_them(tmp_path):
    text = "id,name,aliases,ticker\nnokia,Nokia,,\nnokia,Nokia Again,,\nnestle,Nestlé,,\n"
    with pytest.raises(DataError) as caught:
        read_entities(write(tmp_path, "e.csv", text.encode("latin-1")))
    assert sorted(p.line for p in caught.value.problems) == [3, 4]


def test_a_missing_file_or_another_format_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_entities(tmp_path / "nope.csv")
    with pytest.raises(ConfigError, match=".csv, .tsv or .jsonl"):
        read_entities(write(tmp_path, "e.xlsx", "id,name\n"))


def test_the_finance_recipe_loads_and_links():
    entities = read_entities(RECIPE)
    assert len(entities) >= 45
    linker = EntityLinker(entities)
    text = ("Nokia and Ericsson rose in Helsinki while $AAPL slipped.\n"
            "Analysts at Goldman Sachs said Stora Enso, UPM-Kymmene and Wartsila looked cheap; Alphabet's Google "
            "unit and JPMorgan Chase & Co. were mentioned too.")
    found = {m.entity: m.subject for m in linker.link(text)}
    assert found == {"nokia": True, "ericsson": True, "apple": True, "goldman-sachs": False, "stora-enso": False,
                     "upm": False, "wartsila": False, "alphabet": True, "jpmorgan": False}
