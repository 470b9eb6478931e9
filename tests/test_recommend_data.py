"""Reading interactions and items for the recommender: formats, line-level problems, merging,
the leave-last-out split."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pytest

from domainfit.apps.recommend.data import leave_last_out, parse_time, read_interactions, read_items
from domainfit.core.errors import DataError


def _utc(*args) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize("value,expected", [
    ("964982703", 964982703.0),
    (964982703, 964982703.0),
    ("964982703000", 964982703.0),               # milliseconds
    ("2018-05-01", _utc(2018, 5, 1)),
    ("2018/05/01", _utc(2018, 5, 1)),
    ("2018-05-01T10:30:00Z", _utc(2018, 5, 1, 10, 30)),
    ("2018-05-01T12:30:00+02:00", _utc(2018, 5, 1, 10, 30)),
    ("1995", _utc(1995, 1, 1)),                  # a bare year
    (2004, _utc(2004, 1, 1)),
])
def test_times_in_mixed_formats(value, expected):
    assert parse_time(value) == pytest.approx(expected)


def test_empty_and_bad_times():
    assert math.isnan(parse_time("")) and math.isnan(parse_time(None))
    with pytest.raises(ValueError, match="not a time"):
        parse_time("last tuesday")


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_items_problems_are_listed_with_their_lines(tmp_path):
    f = _write(tmp_path / "items.csv", "item,text,time\na,first film,1999\nb,,2001\na,again,2000\n,no id,\n"
                                       "c,bad time,someday\n")
    with pytest.raises(DataError) as info:
        read_items(f)
    text = str(info.value)
    assert "line 4" in text and "also on line 2" in text
    assert "line 5" in text and "no item id" in text
    assert "line 6" in text and "not a time" in text
    assert "line 3" not in text  # an item without text is kept, not an error


def test_items_without_text_are_kept_and_counted(tmp_path):
    items = read_items(_write(tmp_path / "items.csv", "item,text\na,first film\nb,\n"))
    assert items.ids == ["a", "b"] and items.empty_text == 1 and items.titles[1] == "b"


def test_a_missing_column_names_the_columns_found(tmp_path):
    with pytest.raises(DataError, match="lacks the column 'text'.*found: item, description"):
        read_items(_write(tmp_path / "items.csv", "item,description\na,x\n"))


def test_column_names_are_mapped(tmp_path):
    items = read_items(_write(tmp_path / "items.csv", "item_id,blurb,year\n7,a film,2001\n"),
                       {"item": "item_id", "text": "blurb", "time": "year"})
    assert items.ids == ["7"] and items.times[0] == pytest.approx(_utc(2001, 1, 1))


def _catalogue(tmp_path):
    return read_items(_write(tmp_path / "items.csv", "item,text\na,A\nb,B\nc,C\nd,D\n"))


def test_unknown_items_are_an_error_with_lines_or_skipped(tmp_path):
    items = _catalogue(tmp_path)
    f = _write(tmp_path / "ratings.csv", "user,item,rating,time\nu1,a,4,100\nu1,zz,5,200\nu2,b,oops,300\n")
    with pytest.raises(DataError) as info:
        read_interactions(f, items, threshold=3.5)
    text = str(info.value)
    assert "line 3" in text and "'zz' is not in the items file" in text
    assert "line 4" in text and "not a number" in text
    assert "skip" in text  # the hint names the way out
    f = _write(tmp_path / "ratings.csv", "user,item,rating,time\nu1,a,4,100\nu1,zz,5,200\n")
    data = read_interactions(f, items, threshold=3.5, on_unknown_items="skip")
    assert len(data) == 1 and data.unknown_items == 1


def test_duplicates_keep_the_latest_row_and_rows_sort_by_time(tmp_path):
    items = _catalogue(tmp_path)
    f = _write(tmp_path / "ratings.csv", "user,item,rating,time\nu1,a,2,2018-01-03\nu1,b,5,2018-01-01\n"
                                         "u1,a,5,1514937600\nu2,c,1,\n")
    data = read_interactions(f, items, threshold=3.5)
    assert data.merged == 1
    u1 = data.users.index("u1")
    rows = np.flatnonzero(data.user == u1)
    assert [items.ids[i] for i in data.item[rows]] == ["b", "a"]
    a = rows[1]
    # 2018-01-03 (the first row) is later than 1514937600 (2018-01-03 00:00 too): same time, file order keeps the last.
    assert data.rating[a] == 5 and data.positive[a]


def test_ratings_below_the_threshold_are_seen_not_liked_and_no_rating_is_a_like(tmp_path):
    items = _catalogue(tmp_path)
    f = _write(tmp_path / "ratings.csv", "user,item,rating\nu1,a,2\nu1,b,4\nu1,c,\n")
    data = read_interactions(f, items, threshold=3.5)
    liked = {items.ids[i]: bool(p) for i, p in zip(data.item, data.positive)}
    assert liked == {"a": False, "b": True, "c": True}
    everything = read_interactions(f, items)
    assert everything.positive.all()


def test_jsonl_and_bad_encoding(tmp_path):
    items = _catalogue(tmp_path)
    f = _write(tmp_path / "ratings.jsonl", '{"user": 1, "item": "a"}\nnot json\n{"user": 2, "item": "b"}\n')
    with pytest.raises(DataError, match="line 2.*not valid JSON"):
        read_interactions(f, items)
    bad = tmp_path / "latin.csv"
    bad.write_bytes(b"user,item\nu1,a\nu2,\xe9\n")
    with pytest.raises(DataError, match="line 3.*not UTF-8"):
        read_interactions(bad, items)


def test_leave_last_out_holds_out_each_users_last_likes(tmp_path):
    items = _catalogue(tmp_path)
    f = _write(tmp_path / "ratings.csv", "user,item,rating,time\nu1,a,5,1\nu1,b,5,2\nu1,c,1,3\nu1,d,5,4\n"
                                         "u2,a,5,1\nu3,a,5,1\nu3,b,5,2\n")
    data = read_interactions(f, items, threshold=3.5)
    train, test = leave_last_out(data)
    held = {(data.users[u], items.ids[i]) for u, i in zip(test.user, test.item)}
    assert held == {("u1", "d"), ("u3", "b")}  # u2 has one like: nothing held out
    assert len(train) + len(test) == len(data)
    _, two = leave_last_out(data, last=2)
    assert {(data.users[u], items.ids[i]) for u, i in zip(two.user, two.item)} == \
        {("u1", "b"), ("u1", "d"), ("u3", "b")}  # u3 keeps one like to learn from


def test_empty_files(tmp_path):
    with pytest.raises(DataError, match="has no rows"):
        read_items(_write(tmp_path / "items.csv", "item,text\n"))
    with pytest.raises(DataError, match="is empty"):
        read_items(_write(tmp_path / "blank.csv", ""))
