"""The recommender: components, the hybrid's weights, the bundle, filters, reasons, new items,
the approximate index, the metrics. A small catalogue we generate and the tiny BERT."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from domainfit.apps.recommend import load_recipe, load_recommender, train_bundle
from domainfit.apps.recommend.base import best_positions
from domainfit.apps.recommend.components import EASE, Content, FitData, Sequence, _top_per_sparse_row, make_component
from domainfit.apps.recommend.data import Items, read_interactions, read_items
from domainfit.apps.recommend.evaluate import evaluate_bundle, ranking_metrics
from domainfit.apps.recommend.history import Histories
from domainfit.apps.recommend.hybrid import choose_weights, held_out_estimate, hit_ranks, slot_hits
from domainfit.apps.recommend.index import ExactIndex, FaissIndex
from domainfit.apps.recommend.model import Hybrid, UnknownError, check_k, top_k
from domainfit.core.errors import ConfigError, DomainfitError
from recommend_helpers import write_sample

COLUMNS = {"interactions": {"user": "user_id", "item": "item_id", "time": "timestamp"},
           "items": {"item": "item_id", "time": "year"}}


def _recipe(folder, model, **extra):
    return load_recipe(interactions=str(folder / "interactions.csv"), items=str(folder / "items.csv"),
                       columns=COLUMNS, positive_rating=3.5, model=str(model),
                       components={"ease": {"l2": 10.0, "decay": 0.85}, "ease_watch": {"kind": "ease", "source": "all",
                                                                                        "l2": 10.0},
                                   "tower": {"epochs": 2, "hidden": 16, "batch_size": 64}, "popularity": {}},
                       hybrid={"rounds": 1}, **extra)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_sample(tmp_path_factory.mktemp("catalogue"), n_items=40, n_users=30, per_user=12)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, sample, tiny_model):
    out = tmp_path_factory.mktemp("rec") / "bundle"
    train_bundle(_recipe(sample, tiny_model), out)
    return out


@pytest.fixture()
def rec(bundle):
    return load_recommender(bundle)


def test_ease_is_the_closed_form(sample):
    """B = I − P / diag(P), P = (XᵀX + λI)⁻¹, with a zero diagonal."""
    rng = np.random.default_rng(0)
    X = (rng.random((20, 8)) < 0.4).astype(np.float32)
    hist = Histories([np.flatnonzero(r) for r in X], [np.ones(int(r.sum()), bool) for r in X], np.zeros(20))
    comp = EASE(l2=2.0, decay=1.0, neighbours=100).fit(FitData(hist, 8, None, None))
    cf = comp.cf
    G = X[:, cf].T @ X[:, cf] + 2.0 * np.eye(len(cf))
    P = np.linalg.inv(G)
    B = np.eye(len(cf)) - P / np.diag(P)
    np.fill_diagonal(B, 0)
    np.testing.assert_allclose(comp.S.toarray(), B, atol=1e-4)
    np.testing.assert_allclose(comp.scores(hist, 8)[:, cf], X[:, cf] @ B, atol=1e-4)


def test_ease_recency_weighs_the_latest_like_most():
    hist = Histories([np.array([0, 1])], [np.array([True, True])], np.zeros(1))
    X = hist.matrix(3, decay=0.5)
    assert X.toarray().tolist() == [[0.5, 1.0, 0.0]]


def test_sequence_counts_neighbours_in_each_timeline():
    """Pairs at most ``window`` apart, both ways, weighted 1/distance, any rating; a user's
    latest events weigh most."""
    hist = Histories([np.array([0, 1, 2]), np.array([2, 3])], [np.array([True, False, True]), np.array([True, True])],
                     np.zeros(2))
    comp = Sequence(window=2, decay=0.5).fit(FitData(hist, 5, None, None))
    full = np.zeros((5, 5))
    full[np.ix_(comp.cf, comp.cf)] = comp.S.toarray()
    expected = np.zeros((5, 5))
    for a, b, w in ((0, 1, 1.0), (1, 2, 1.0), (0, 2, 0.5), (2, 3, 1.0)):
        expected[a, b] = expected[b, a] = w
    np.testing.assert_allclose(full, expected)
    assert 4 not in comp.cf  # nobody's timeline has item 4
    query = Histories([np.array([0, 3])], [np.array([True, False])], np.zeros(1))
    np.testing.assert_allclose(comp.scores(query, 5)[0], 0.5 * expected[0] + expected[3], atol=1e-6)
    with pytest.raises(ConfigError, match="window"):
        Sequence(window=0)


def test_content_is_the_cosine_of_centred_vectors():
    """Scores equal the cosine between the recency-weighted mean of the history's centred,
    normalised vectors and each item's; items without text score 0; uncentred is plain cosine."""
    from domainfit.apps.recommend.model import Context

    rng = np.random.default_rng(0)
    V = rng.normal(size=(12, 6)).astype(np.float32) + 2.0  # a common direction, as encoders have
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    V[11] = 0.0  # no text
    hist = Histories([np.array([0, 3, 5]), np.array([11])], [np.array([True, False, True]), np.array([True])],
                     np.zeros(2))
    ctx = Context(V, np.zeros(12), None)
    comp = Content(decay=0.5).fit(FitData(hist, 12, V, None))
    mean = V[:11].mean(0)
    np.testing.assert_allclose(comp.mean, mean, atol=1e-6)
    C = (V[:11] - mean) / np.linalg.norm(V[:11] - mean, axis=1, keepdims=True)
    u = 0.5 * C[0] + C[5]
    expected = C @ (u / np.linalg.norm(u))
    got = comp.scores(hist, 12, ctx)
    np.testing.assert_allclose(got[0, :11], expected, atol=1e-5)
    assert got[0, 11] == 0.0 and not got[1].any()  # a history of an item without text matches nothing
    np.testing.assert_allclose(comp.scores_of(hist, 12, np.array([2, 7, 11]), ctx)[0], got[0, [2, 7, 11]], atol=1e-6)
    plain = Content(decay=0.5, centre=False).fit(FitData(hist, 12, V, None)).scores(hist, 12, ctx)[0]
    w = 0.5 * V[0] + V[5]
    np.testing.assert_allclose(plain, V @ (w / np.linalg.norm(w)), atol=1e-5)


def test_cold_slots_keep_the_best_cold_items_in_the_last_places():
    row = np.array([9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, -np.inf, 1.0])
    cold = np.array([False, False, False, False, True, False, True, True, True])
    assert top_k(row, 4).tolist() == [0, 1, 2, 3]
    assert top_k(row, 4, cold, 1).tolist() == [0, 1, 2, 4]
    assert top_k(row, 4, cold, 2).tolist() == [0, 1, 4, 6]
    assert top_k(row, 6, cold, 1).tolist() == [0, 1, 2, 3, 4, 5]  # one is there already
    assert top_k(row, 4, cold, 9).tolist() == [0, 4, 6, 8]  # every finite cold item, the list still 4 long
    tenth = Hybrid({}, [0.0], cold_share=0.1)
    assert tenth.cold_slots(10) == 1 and tenth.cold_slots(9) == 0 and tenth.cold_slots(25) == 2
    # The validation's rank arithmetic agrees with the lists themselves.
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(30, 60)).astype(np.float32)
    scores[rng.random((30, 60)) < 0.1] = -np.inf
    cold = rng.random(60) < 0.4
    targets = np.array([rng.choice(np.flatnonzero(np.isfinite(r))) for r in scores])
    for slots in (0, 1, 3):
        found = [t in top_k(r.copy(), 5, cold, slots) for r, t in zip(scores, targets)]
        assert slot_hits(scores, np.arange(30), targets, cold, 5, slots).tolist() == found
    # A catalogue smaller than the list: every item is in it, and the search still runs.
    small = rng.normal(size=(30, 4)).astype(np.float32)
    picked = rng.integers(0, 4, size=30)
    assert slot_hits(small, np.arange(30), picked, cold[:4], 5, 1).all()
    _, report = choose_weights({"a": small}, np.arange(30), picked, np.zeros((30, 4), dtype=bool),
                               np.array([0.0, 9.0, 9.0, 1.0]), k=10, rounds=1)
    assert report["chosen"]["recall"] == 1.0


def test_unknown_component_and_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="unknown component 'svd'"):
        make_component("svd")
    with pytest.raises(ConfigError, match="ease"):
        make_component("ease", {"alpha": 1})


def test_tied_scores_do_not_count_as_hits():
    scores = np.zeros((1, 50), dtype=np.float32)  # every item ties with the target
    assert hit_ranks(scores, np.array([0]), np.array([3]))[0] == pytest.approx(24.5)


def test_weights_favour_the_component_that_finds_the_held_out_items():
    rng = np.random.default_rng(0)
    users, items = 40, 30
    targets = rng.integers(0, items, size=users)
    good = rng.normal(size=(users, items)).astype(np.float32)
    good[np.arange(users), targets] += 4.0  # this component ranks each target near the top
    noise = rng.normal(size=(users, items)).astype(np.float32)
    counts = rng.integers(0, 30, size=items).astype(float)
    blocked = np.zeros((users, items), dtype=bool)
    hybrid, report = choose_weights({"noise": noise, "good": good}, np.arange(users), targets, blocked, counts,
                                    k=3, rounds=1, min_gain=0.0)
    assert report["chosen"]["recall"] > report["start"]["recall"] and report["chosen"]["recall"] >= 0.9
    assert sum(hybrid.weights["good"]) > sum(hybrid.weights["noise"])
    # By default a change must find more than one extra held-out item: a component that finds
    # exactly one target the start misses is not taken up.
    start = np.zeros((users, items), dtype=np.float32)
    start[np.arange(users), targets] = 1.0
    start[0, targets[0]] = -1.0  # the start misses user 0's item...
    lucky = np.zeros((users, items), dtype=np.float32)
    lucky[0, targets[0]] = 1.0  # ...which this one finds, and nothing else
    counts = np.full(items, 30.0)
    hybrid, report = choose_weights({"start": start, "lucky": lucky}, np.arange(users), targets, blocked, counts,
                                    k=1, rounds=1)
    assert not any(hybrid.weights["lucky"]) and report["chosen"]["recall"] == report["start"]["recall"]
    hybrid, _ = choose_weights({"start": start, "lucky": lucky}, np.arange(users), targets, blocked, counts,
                               k=1, rounds=1, min_gain=0.0)
    assert any(hybrid.weights["lucky"])


def test_the_held_out_estimate_scores_users_the_weights_were_not_chosen_on():
    rng = np.random.default_rng(1)
    users, items, k = 120, 40, 3
    targets = rng.integers(0, items, size=users)
    rows = np.arange(users)
    counts = rng.integers(0, 30, size=items).astype(float)
    blocked = np.zeros((users, items), dtype=bool)
    # Components of pure noise: weights searched on these users fit their luck, which other
    # users do not share; the estimate must see through that.
    noise = {f"noise{i}": rng.normal(size=(users, items)).astype(np.float32) for i in range(4)}
    _, report = choose_weights(noise, rows, targets, blocked, counts, k=k, rounds=2, min_gain=0.0)
    held = held_out_estimate(noise, rows, targets, blocked, counts, k=k, rounds=2, min_gain=0.0)
    assert held["folds"] == 2 and held["users"] == users
    assert held["recall"] < report["chosen"]["recall"]
    assert held["recall"] < 2 * k / items  # about chance (k / items)
    # A component that finds every target (the search's starting point, weighing 1 in every
    # bucket) does so on the users the weights were not chosen on too.
    perfect = rng.normal(size=(users, items)).astype(np.float32)
    perfect[rows, targets] += 100.0
    held = held_out_estimate({"perfect": perfect, **noise}, rows, targets, blocked, counts, k=k, folds=3)
    assert held["recall"] == 1.0 and held["folds"] == 3
    cold = counts[targets] < 5
    assert held["cold_targets"] == cold.sum() and held["cold_recall"] == (1.0 if cold.any() else 0.0)
    assert held_out_estimate(noise, rows[:3], targets[:3], blocked, counts, k=k) is None  # too few users
    assert held_out_estimate(noise, rows, targets, blocked, counts, k=k, folds=0) is None


def test_bundle_holds_json_and_safetensors_only(bundle):
    files = [p for p in bundle.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in (".pkl", ".pickle", ".pt", ".bin", ".npy", ".npz")]
    meta = json.loads((bundle / "bundle.json").read_text())
    assert meta["kind"] == "recommend" and set(meta["components"]) == {"ease", "ease_watch", "tower", "popularity"}
    assert (bundle / "encoder" / "config.json").is_file()
    assert meta["hybrid"]["weights"]["tower"][0] > 0  # brand-new items are ranked by their text
    assert not list(bundle.parent.glob(".*partial"))
    held = json.loads((bundle / "report" / "validation.json").read_text())["held_out"]
    assert held["folds"] == 2 and 0.0 <= held["cold_recall"] <= 1.0 and 0.0 <= held["recall"] <= 1.0


def test_a_users_recommendations_exclude_what_they_have_seen_and_explain_themselves(rec):
    user = rec.train.users[0]
    hist = rec.user_histories([user])
    seen = {rec.items.ids[i] for i in hist.items[0]}
    liked = {rec.items.ids[i] for i in hist.items[0][hist.positive[0]]}
    recs = rec.recommend(hist, 10)[0]
    assert len(recs) == 10 and not seen & {r["item"] for r in recs}
    assert [r["score"] for r in recs] == sorted((r["score"] for r in recs), reverse=True)
    assert all(r["because"] and r["because"]["item"] in liked for r in recs)
    kept = rec.recommend(hist, 40, exclude_seen=False)[0]
    assert seen <= {r["item"] for r in kept}


def test_include_and_exclude_filters(rec):
    hist = rec.user_histories([rec.train.users[1]])
    seen = {rec.items.ids[i] for i in hist.items[0]}
    allowed = [i for i in rec.items.ids if i not in seen][:5]
    only = rec.recommend(hist, 10, include=allowed)[0]
    assert {r["item"] for r in only} == set(allowed)
    first = rec.recommend(hist, 3)[0][0]["item"]
    again = rec.recommend(hist, 3, exclude=[first])[0]
    assert first not in {r["item"] for r in again}
    with pytest.raises(UnknownError, match="unknown item 'nope'"):
        rec.recommend(hist, 3, include=["nope"])


def test_cold_slots_in_a_users_list(rec, bundle):
    """A share of the list goes to the best cold items, the rest stays as the scores had it,
    and the bundle records the share."""
    meta = json.loads((bundle / "bundle.json").read_text())
    assert {"cold_share", "cold_threshold"} <= set(meta["hybrid"])
    rec.hybrid.cold_threshold = 3
    hist = rec.user_histories([rec.train.users[0]])
    seen = {rec.items.ids[i] for i in hist.items[0]}
    cold = {rec.items.ids[i] for i in np.flatnonzero(rec.counts < 3)} - seen
    assert len(cold) >= 3
    rec.hybrid.cold_share = 0.0
    plain = [r["item"] for r in rec.recommend(hist, 10)[0]]
    rec.hybrid.cold_share = 0.3
    slotted = [r["item"] for r in rec.recommend(hist, 10)[0]]
    assert len(slotted) == 10 and sum(i in cold for i in slotted) >= 3
    kept = 10 - max(3, sum(i in cold for i in plain))
    assert [i for i in slotted if i not in cold] == [i for i in plain if i not in cold][:kept]


def test_k_is_checked():
    for bad in (0, -1, 1_000_000, 2.5, True):
        with pytest.raises(DomainfitError, match="k must be"):
            check_k(bad)
    assert check_k(1000) == 1000


def test_unknown_users_and_anonymous_sessions(rec):
    with pytest.raises(UnknownError, match="unknown user 'ghost'.*new user"):
        rec.user_histories(["ghost"])
    liked = rec.items.ids[:2]
    recs = rec.recommend(rec.session(liked), 5)[0]
    assert len(recs) == 5 and not set(liked) & {r["item"] for r in recs}
    by_text = rec.recommend(rec.session(text="a quiet romance in the winter"), 5)[0]
    assert len(by_text) == 5 and all(r["because"] is None for r in by_text)


def test_similar_items(rec):
    item = rec.items.ids[3]
    similar = rec.similar(item, 5)
    assert len(similar) == 5 and item not in {r["item"] for r in similar}


def test_a_new_item_is_recommendable_at_once_and_saved(bundle, tmp_path, rec):
    from domainfit.apps.recommend.bundle import add_items

    # A new film that is the same text as an old one: the text tower must place it beside it.
    twin = rec.items.texts[5]
    new = tmp_path / "new.csv"
    new.write_text(f'item,text,time\nnew-1,"{twin}",2017\n', encoding="utf-8")
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(bundle, copy)
    assert add_items(copy, new) == 1
    fresh = load_recommender(copy)
    assert "new-1" in fresh.items.index and fresh.counts[fresh.items.index["new-1"]] == 0
    recs = fresh.recommend(fresh.session(text=twin), 1000)[0]
    ranked = [r["item"] for r in recs]
    assert "new-1" in ranked  # recommendable without retraining
    only_new = fresh.recommend(fresh.session([rec.items.ids[5]]), 1, include=["new-1"])[0]
    assert only_new[0]["item"] == "new-1"
    with pytest.raises(DomainfitError, match="already in the catalogue"):
        add_items(copy, new)


def test_the_index_path_matches_exact_scoring_when_searched_fully(bundle):
    exact = load_recommender(bundle)
    approx = load_recommender(bundle)
    approx.exact_limit = 10  # force the approximate path on this small catalogue
    approx.index_settings = {"lists": 4, "probe": 4}  # every cell searched: the index is exact
    for user in exact.train.users[:5]:
        a = exact.recommend(exact.user_histories([user]), 10)[0]
        b = approx.recommend(approx.user_histories([user]), 10)[0]
        assert [r["item"] for r in a] == [r["item"] for r in b]
        assert [r["score"] for r in a] == pytest.approx([r["score"] for r in b], abs=1e-3)
    assert approx._index is not None


def test_the_index_also_searches_by_text_where_content_ranks_new_items(bundle):
    """When the hybrid weighs plain text similarity for items without history, new items that
    only it ranks high are among the index's candidates too."""
    rng = np.random.default_rng(0)
    recs = [load_recommender(bundle), load_recommender(bundle)]
    user = recs[0].train.users[0]
    liked = recs[0].user_histories([user]).items[0][-1]
    dim = recs[0].vectors.shape[1]
    vectors = rng.normal(size=(3000, dim)).astype(np.float32)
    vectors[7] = recs[0].vectors[liked] + 0.01 * vectors[7]  # text much like what the user liked last
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    new = Items([f"n{i}" for i in range(3000)], ["x"] * 3000, np.full(3000, np.nan), [f"n{i}" for i in range(3000)])
    for rec in recs:
        rec.components["content"] = make_component("content", {"decay": 0.5}).fit(
            FitData(rec.user_histories([user]), rec.n_items, rec.vectors, None))
        rec.hybrid.weights = {name: [0.0] * 4 for name in rec.hybrid.weights}
        rec.hybrid.weights["content"] = [5.0, 0.0, 0.0, 0.0]
        rec.hybrid.weights["ease"] = [0.0, 1.0, 1.0, 1.0]
        rec.add_items(Items(list(new.ids), list(new.texts), new.times.copy(), list(new.titles)), vectors)
    recs[1].exact_limit = 10
    recs[1].index_settings = {"kind": "exact"}
    a, b = (r.recommend(r.user_histories([user]), 5, reasons=False)[0] for r in recs)
    assert a[0]["item"] == "n7" and [r["item"] for r in a] == [r["item"] for r in b]
    assert recs[1]._text_index is not None
    late = recs[0].vectors[liked][None, :].copy()  # added once the indexes exist: they take it in
    for rec in recs:
        rec.add_items(Items(["late"], ["x"], np.array([np.nan]), ["late"]), late)
    a, b = (r.recommend(r.user_histories([user]), 5, reasons=False)[0] for r in recs)
    assert a[0]["item"] == "late" and [r["item"] for r in a] == [r["item"] for r in b]


def test_faiss_index_against_exact_search():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(50, 32))
    vectors = centres[rng.integers(0, 50, size=20_000)] + 0.3 * rng.normal(size=(20_000, 32))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    queries = vectors[rng.integers(0, 20_000, size=100)] + 0.05 * rng.normal(size=(100, 32)).astype(np.float32)
    exact = ExactIndex(vectors).search(queries, 20)
    index = FaissIndex(vectors, probe=16)
    found = index.search(queries, 20)
    recall = np.mean([len(set(a) & set(b)) / 20 for a, b in zip(found, exact)])
    assert recall >= 0.9
    full = FaissIndex(vectors, lists=64, probe=64).search(queries, 20)
    assert np.mean([len(set(a) & set(b)) / 20 for a, b in zip(full, exact)]) == 1.0
    index.add(vectors[:10] * -1)  # items added later are found
    assert set(index.search(-vectors[:1], 1)[0]) <= set(range(20_000, 20_010))


def test_ranking_metrics_by_hand():
    rankings = {0: np.array([5, 1, 2]), 1: np.array([7, 8, 9])}
    test = {0: {1, 4}, 1: {9}}
    counts = np.zeros(10)
    counts[4] = 10
    m = ranking_metrics(rankings, test, counts, 10, k=3, cold_threshold=5)
    assert m["recall@3"] == pytest.approx((0.5 + 1.0) / 2)
    ndcg0 = (1 / np.log2(3)) / (1 + 1 / np.log2(3))
    ndcg1 = (1 / np.log2(4)) / 1.0
    assert m["ndcg@3"] == pytest.approx((ndcg0 + ndcg1) / 2)
    assert m["mrr@3"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert m["coverage@3"] == pytest.approx(6 / 10)
    assert m["cold_recall@3"] == pytest.approx(2 / 2)  # items 1 and 9 are cold, both found; 4 is warm


def test_evaluate_a_bundle_on_held_out_likes(bundle, sample, tmp_path):
    rec = load_recommender(bundle)
    lines = ["user_id,item_id,rating,timestamp"]
    for user in rec.train.users[:10]:
        top = rec.recommend(rec.user_histories([user]), 1)[0][0]["item"]
        lines.append(f"{user},{top},5,1600000000")  # each user's held-out like is their first recommendation
    lines.append(f"stranger,{rec.items.ids[0]},5,1600000000")
    test = tmp_path / "test.csv"
    test.write_text("\n".join(lines) + "\n", encoding="utf-8")
    m = evaluate_bundle(rec, test, COLUMNS["interactions"], positive_rating=3.5)
    assert m["recall@10"] == 1.0 and m["mrr@10"] == 1.0 and m["users"] == 10 and m["unknown_users"] == 1


def test_a_failed_build_leaves_nothing_behind(sample, tiny_model, tmp_path):
    bad = tmp_path / "interactions.csv"
    bad.write_text("user_id,item_id,rating,timestamp\n1,100,5,1\n1,999999,5,2\n", encoding="utf-8")
    r = _recipe(sample, tiny_model)
    r.interactions = str(bad)
    with pytest.raises(DomainfitError, match="line 3.*999999"):
        train_bundle(r, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial"))


def test_a_bundle_is_not_overwritten_without_asking(bundle, sample, tiny_model):
    with pytest.raises(ConfigError, match="--overwrite"):
        train_bundle(_recipe(sample, tiny_model), bundle)


def test_recipe_errors_name_the_key(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("interactions: a.csv\nitems: b.csv\ncomponents: {ease: {kind: svd}}\nhybrid: {edges: [5, 1]}\n",
                      encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_recipe(recipe)
    text = str(info.value)
    assert "components" in text and "unknown kind 'svd'" in text and "hybrid.edges" in text


def test_item_vectors_for_items_without_text_are_zero(rec):
    items = Items(["blank"], [""], np.array([np.nan]), ["blank"])
    rec.add_items(items)
    assert not rec.vectors[rec.items.index["blank"]].any()
    hist = rec.user_histories([rec.train.users[0]])
    everything = rec.recommend(hist, 1000)[0]  # k beyond the catalogue: every item not seen, best first
    assert len(everything) == rec.n_items - len(set(hist.items[0])) and "blank" in {r["item"] for r in everything}


def test_sparse_history_matrix_counts_an_item_twice_once():
    hist = Histories([np.array([2, 2])], [np.array([True, True])], np.zeros(1))
    m = hist.matrix(3, decay=1.0)
    assert isinstance(m, sp.csr_matrix) and m.toarray().tolist() == [[0.0, 0.0, 2.0]]


def test_reading_the_sample_the_way_the_recipe_does(sample):
    items = read_items(sample / "items.csv", COLUMNS["items"])
    data = read_interactions(sample / "interactions.csv", items, COLUMNS["interactions"], threshold=3.5)
    assert len(items) == 40 and 0 < data.positive.mean() < 1


def test_the_recommendation_endpoints(bundle, tmp_path):
    import shutil

    from fastapi.testclient import TestClient

    from domainfit.apps.recommend.server import create_recommend_app
    from domainfit.serving import ServeSettings

    copy = tmp_path / "served"
    shutil.copytree(bundle, copy)
    app = create_recommend_app(copy, ServeSettings(api_key="k"), max_items=3)
    key = {"Authorization": "Bearer k"}
    rec = load_recommender(copy)
    user = rec.train.users[0]
    with TestClient(app) as client:
        body = client.get("/v1/recommendations", params={"user": user, "k": 4}).json()
        assert body["user"] == user and len(body["items"]) == 4 and body["items"][0]["because"]
        assert body["items"] == rec.recommend(rec.user_histories([user]), 4)[0]
        assert client.get("/v1/recommendations", params={"user": "ghost"}).status_code == 404
        assert client.get("/v1/recommendations", params={"user": user, "k": 0}).status_code == 422
        assert client.get("/v1/recommendations", params={"user": user, "k": 1_000_000}).status_code == 422
        only = client.get("/v1/recommendations", params={"user": user, "include": ",".join(rec.items.ids[-3:]),
                                                         "keep_seen": True}).json()
        assert {r["item"] for r in only["items"]} == set(rec.items.ids[-3:])
        session = client.post("/v1/recommendations", json={"history": rec.items.ids[:2], "text": "winter", "k": 3})
        assert session.status_code == 200 and len(session.json()["items"]) == 3
        assert client.post("/v1/recommendations", json={"history": []}).status_code == 422
        assert client.post("/v1/recommendations", json={"history": ["nope"]}).status_code == 404
        similar = client.get(f"/v1/items/{rec.items.ids[0]}/similar", params={"k": 2}).json()
        assert len(similar["items"]) == 2
        new = {"items": [{"item": "fresh-1", "text": rec.items.texts[4], "time": 2018}]}
        assert client.post("/v1/items", json=new).status_code == 401
        added = client.post("/v1/items", json=new, headers=key).json()
        assert added == {"added": 1, "items": rec.n_items + 1}
        assert client.post("/v1/items", json=new, headers=key).status_code == 422  # already there
        too_many = {"items": [{"item": f"x{i}", "text": "t"} for i in range(4)]}
        assert client.post("/v1/items", json=too_many, headers=key).status_code == 413
        fresh = client.get("/v1/recommendations", params={"user": user, "include": "fresh-1"}).json()
        assert [r["item"] for r in fresh["items"]] == ["fresh-1"]
        metrics = client.get("/metrics").text
        assert 'domainfit_predicted_items_total{model="recommendations"}' in metrics
    assert "fresh-1" in load_recommender(copy).items.index  # written to the bundle


@pytest.mark.integration
def test_the_command_line_from_training_to_batch_recommendations(sample, tiny_model, tmp_path):
    from helpers import run_cli

    out = tmp_path / "rec"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"interactions: {sample / 'interactions.csv'}\nitems: {sample / 'items.csv'}\n"
        "columns:\n  interactions: {user: user_id, item: item_id, time: timestamp}\n"
        "  items: {item: item_id, time: year}\n"
        f"positive_rating: 3.5\nmodel: {tiny_model}\n"
        "components: {ease: {l2: 10}, tower: {epochs: 1, hidden: 16}, popularity: {}}\nhybrid: {rounds: 1}\n",
        encoding="utf-8")
    done = run_cli("app", "recommend", "train", str(recipe), "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert "Saved" in done.stderr and "validation recall@10" in done.stderr
    one = run_cli("app", "recommend", "recommend", str(out), "--user", "1", "-k", "3", "--json")
    assert one.returncode == 0, one.stderr
    assert len(json.loads(one.stdout)["items"]) == 3
    users = tmp_path / "users.txt"
    users.write_text("1\n2\nghost\n", encoding="utf-8")
    batch = tmp_path / "recs.jsonl"
    done = run_cli("app", "recommend", "recommend", str(out), "--users", str(users), "-k", "5", "--output", str(batch))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(x) for x in batch.read_text().splitlines()]
    assert [x["user"] for x in lines] == ["1", "2", "ghost"] and len(lines[0]["items"]) == 5
    assert lines[2] == {"user": "ghost", "items": [], "error": "unknown user"} and "1 unknown users" in done.stderr
    new = tmp_path / "new.csv"
    new.write_text("item,text\nbrand-new,The Quiet Garden Part III (2019). Genres: Drama.\n", encoding="utf-8")
    done = run_cli("app", "recommend", "add-items", str(out), "--items", str(new))
    assert done.returncode == 0 and "Added 1 items" in done.stderr, done.stderr
    similar = run_cli("app", "recommend", "similar", str(out), "brand-new", "-k", "2", "--json")
    assert similar.returncode == 0 and len(json.loads(similar.stdout)["items"]) == 2
    test = tmp_path / "test.csv"
    test.write_text("user_id,item_id,rating,timestamp\n1,brand-new,5,1600000000\n2,100,5,1600000000\n",
                    encoding="utf-8")
    scored = run_cli("app", "recommend", "evaluate", str(out), "--data", str(test), "--json")
    assert scored.returncode == 0, scored.stderr
    assert {"recall@10", "ndcg@10", "mrr@10", "coverage@10", "cold_recall@10"} <= set(json.loads(scored.stdout))
    # A user's mistakes: a clear message and no traceback.
    for args, message in ((("recommend", str(out), "--user", "ghost"), "unknown user 'ghost'"),
                          (("recommend", str(out), "--user", "1", "-k", "0"), "k must be between 1 and 1000"),
                          (("recommend", str(out)), "give one of --user"),
                          (("train", "--interactions", str(test), "--items", str(new), "--output", str(tmp_path / "x")),
                           "lacks the columns 'user', 'item'")):
        failed = run_cli("app", "recommend", *args)
        assert failed.returncode != 0 and message in failed.stderr and "Traceback" not in failed.stderr, failed.stderr


def test_als_folds_users_in_from_their_history():
    """Users who like the same items get the same scores, whoever they are (no per-user training)."""
    rng = np.random.default_rng(0)
    groups = [np.arange(0, 10), np.arange(10, 20)]
    items, positive = [], []
    for u in range(40):
        liked = rng.choice(groups[u % 2], size=6, replace=False)
        items.append(liked)
        positive.append(np.ones(6, dtype=bool))
    hist = Histories(items, positive, np.zeros(40))
    als = make_component("als", {"factors": 8, "iterations": 10}).fit(FitData(hist, 20, None, None))
    probe = Histories([groups[0][:3], groups[1][:3]], [np.ones(3, bool)] * 2, np.zeros(2))
    scores = als.scores(probe, 20)
    assert scores[0, 3:10].mean() > scores[0, 10:20].mean() and scores[1, 13:20].mean() > scores[1, 0:10].mean()


def test_tower_vectors_of_added_items_match_a_fresh_computation(rec):
    tower = rec.components["tower"]
    before = rec._tower_vectors().copy()
    twins = Items(["t1", "t2"], rec.items.texts[:2], np.array([np.nan, np.nan]), ["t1", "t2"])
    rec.add_items(twins, rec.vectors[:2].copy())
    grown = rec._tower_vectors()
    tower._item_cache = None
    np.testing.assert_allclose(grown, rec._tower_vectors(), atol=1e-6)
    np.testing.assert_allclose(grown[-2:], before[:2], atol=1e-6)


def test_equal_scores_are_listed_in_item_order_whatever_the_cpu():
    # Many items share a score (popularity ranks by counts): which of them make the list must
    # not depend on the partition kernel, or figures would differ from one machine to another.
    row = np.array([1.0, 3.0, 2.0, 3.0, 2.0, 2.0, -np.inf, 2.0, 0.5, 2.0] * 50, dtype=np.float32)
    assert list(top_k(row, 4)) == [1, 3, 11, 13]
    assert list(top_k(row, 103)) == [*np.flatnonzero(row == 3.0), 2, 4, 5]
    assert list(top_k(np.array([np.nan, 1.0, 1.0], dtype=np.float32), 5)) == [1, 2]
    assert list(best_positions(np.array([0.0, 1.0, 1.0, 0.0]), 3)) == [1, 2, 0]
    m = sp.csr_matrix(np.array([[0, 2, 1, 2, 2], [5, 0, 0, 0, 1]], dtype=np.float32))
    kept = _top_per_sparse_row(m, 2)
    assert kept[0].indices.tolist() == [1, 3] and kept[1].indices.tolist() == [0, 4]
