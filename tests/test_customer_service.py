"""The customer-service app: answers and slots, knowledge, out-of-scope detection and
calibration, conversations in SQLite, the bundle end to end on a tiny model, the chat API
on a real server, and the web chat page in headless Chromium."""

from __future__ import annotations

import csv
import json
import shutil

import httpx
import numpy as np
import pytest

from domainfit.apps.customer_service import Assistant, ConversationStore, evaluate_bundle, load_recipe, train_bundle
from domainfit.apps.customer_service.answers import Answer, check_template, read_answers, render
from domainfit.apps.customer_service.knowledge import read_documents, read_faq
from domainfit.apps.customer_service.server import create_chat_app
from domainfit.core.errors import ConfigError, DataError, DomainfitError
from domainfit.ood import OutOfScopeDetector, auroc, budgets, calibrate, tradeoff
from domainfit.serving import ServeSettings
from helpers import fast_settings, headless_chromium, run_cli, running_app

KEY = "cs-admin-key"
INTENT_PHRASES = {
    "card_arrival": ["where is my card", "my card has not arrived", "when will my card arrive",
                     "still waiting for my card"],
    "refund": ["i want a refund", "money back please", "refund my order", "how do i get my money back"],
    "password": ["forgot my password", "reset my password please", "i can not log in", "password reset help"],
}
FAQ = [("What are your opening hours?", "We are open from 9 to 5 on weekdays."),
       ("How do I download the mobile app?", "Search for our bank in your phone's app store."),
       ("Can I pay in cheques?", "Yes, at any branch counter.")]


def _write(tmp_path, oos_rows: bool = False):
    rows = []
    for label, phrases in INTENT_PHRASES.items():
        for i in range(12):
            rows.append({"text": phrases[i % 4] + ("" if i < 4 else f" {['please', 'now', 'today'][i % 3]}"),
                         "label": label})
    if oos_rows:
        rows += [{"text": t, "label": "oos"} for t in ["what is the weather", "tell me a joke", "who won the game",
                                                        "play some music", "book a flight", "weather tomorrow"]]
    with open(tmp_path / "intents.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, ["text", "label"])
        w.writeheader()
        w.writerows(rows)
    with open(tmp_path / "answers.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["intent", "answer", "slots"])
        w.writerow(["card_arrival", "Your {card_type} arrives within {days}.", "card_type=card;days=5 days"])
        w.writerow(["refund", "Refunds take {{up to}} 3 days.", ""])
        w.writerow(["password", "Use 'Forgot password' on the login screen.", ""])
    with open(tmp_path / "faq.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "question", "answer"])
        for n, (q, a) in enumerate(FAQ, 1):
            w.writerow([n, q, a])
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "fees.md").write_text("# Fees\n\nSending money abroad costs 1 percent.\n\n## Cash\n\n"
                                  "Cash withdrawals are free up to 200 a month.\n", encoding="utf-8")
    return tmp_path


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, tiny_model):
    folder = _write(tmp_path_factory.mktemp("cs"))
    recipe = load_recipe(intents={"data": str(folder / "intents.csv"), "model": str(tiny_model),
                                  "settings": fast_settings(**{"training.epochs": 12})},
                         answers=str(folder / "answers.csv"), faq={"data": str(folder / "faq.csv")},
                         docs=str(folder / "docs"), retrieval={"model": str(tiny_model), "min_score": 0.99},
                         client_slots=["card_type"])
    return train_bundle(recipe, folder / "bundle")


# ------------------------------------------------------------------------------- answers

def test_render_fills_slots_from_context_then_defaults_and_never_reinterprets_values():
    answer = Answer("Your {card_type} arrives within {days}. {{literal}}", {"days": "5 days"})
    text, missing = render(answer, {"card_type": "Visa"})
    assert text == "Your Visa arrives within 5 days. {literal}" and missing == []
    text, missing = render(answer, {})
    assert text == "Your your card type arrives within 5 days. {literal}" and missing == ["card_type"]
    # A value is plain text: braces, markup and control characters are removed, never rendered.
    text, _ = render(answer, {"card_type": "{days}<script>alert(1)</script>\x00", "days": "{0.__class__}"})
    assert "<" not in text and "{days}" not in text and "__class__" in text and "\x00" not in text
    assert text.startswith("Your daysscriptalert(1)/script arrives within 0.__class__.")


@pytest.mark.parametrize("template", ["{0}", "{}", "{a.b}", "{x!r}", "{x:>10}", "{Name}", "a } b", "{x"])
def test_templates_with_other_braces_are_refused(template):
    assert check_template(template) is not None


def test_answers_file_problems_name_their_lines(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("intent,answer,slots\nrefund,ok,\nrefund,again,\n,empty intent,\npassword,,\ncard,{0.x},\n"
                    "fees,costs {fee},fee\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_answers(path)
    text = str(err.value)
    for line in (3, 4, 5, 6, 7):
        assert f"line {line}" in text, text
    yaml_file = tmp_path / "a.yaml"
    yaml_file.write_text("refund: Refunds take {days}.\ncard:\n  answer: Your {card_type}.\n  slots: {card_type: card}\n",
                         encoding="utf-8")
    answers = read_answers(yaml_file)
    assert render(answers["card"])[0] == "Your card." and answers["refund"].template == "Refunds take {days}."


# ------------------------------------------------------------------------------- knowledge

def test_documents_are_cut_into_passages_with_heading_and_line(tmp_path):
    docs = tmp_path / "d"
    (docs / "sub").mkdir(parents=True)
    long = " ".join(f"Sentence number {i} is here." for i in range(60))  # 300 words
    (docs / "sub" / "guide.md").write_text(f"# Cards\n\nOrder a card in the app.\n\n## Limits\n\n{long}\n",
                                           encoding="utf-8")
    (docs / "notes.txt").write_text("plain text\nacross two lines\n", encoding="utf-8")
    (docs / "image.png").write_bytes(b"\x89PNG")
    passages = read_documents(docs, max_words=120)
    by_source = {p["source"]: p for p in passages}
    assert by_source["sub/guide.md:3"]["title"] == "Cards" and by_source["sub/guide.md:3"]["answer"] == \
        "Order a card in the app."
    limits = [p for p in passages if p["title"] == "Limits"]
    assert len(limits) == 3 and all(len(p["answer"].split()) <= 120 for p in limits)
    assert " ".join(p["answer"] for p in limits) == long  # nothing lost
    assert by_source["notes.txt:1"]["answer"] == "plain text across two lines"
    assert len({p["id"] for p in passages}) == len(passages)
    with pytest.raises(DataError, match="no documents"):
        read_documents(_empty(tmp_path))


def _empty(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


def test_faq_problems_are_reported_with_lines(tmp_path):
    path = tmp_path / "faq.csv"
    path.write_text("id,question,answer\n1,Q one,A one\n1,Q two,A two\n2,,A three\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_faq(path)
    assert "line 3" in str(err.value) and "line 4" in str(err.value)
    path.write_text("q,a\nx,y\n", encoding="utf-8")
    with pytest.raises(DataError, match="no column 'question'"):
        read_faq(path)


# ------------------------------------------------------------------------------- out-of-scope

def _clusters(rng, centres, n, spread=0.3):
    x = np.concatenate([c + spread * rng.standard_normal((n, centres.shape[1])) for c in centres])
    y = np.repeat(np.arange(len(centres)), n)
    return x.astype(np.float32), y


def test_mahalanobis_and_knn_find_what_max_softmax_misses():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 16)) * 3
    x, y = _clusters(rng, centres, 200)
    w = np.linalg.lstsq(x, np.eye(4)[y] * 10, rcond=None)[0]  # a linear "classifier" on the features
    test_in, _ = _clusters(rng, centres, 50)
    # Out of scope (a): far out along a class's own direction, where the classifier is very
    # sure; (b): a direction of its own. Cosine kNN cannot see (a): it ignores length.
    far = (centres[0] * 3 + 0.3 * rng.standard_normal((200, 16))).astype(np.float32)
    other = (rng.standard_normal(16) * 3 + 0.3 * rng.standard_normal((200, 16))).astype(np.float32)
    in_scope = np.r_[np.ones(len(test_in), bool), np.zeros(200, bool)]
    results = {}
    for name, test_out in (("far", far), ("other", other)):
        feats = np.concatenate([test_in, test_out])
        logits = feats @ w
        for method in ("max-softmax", "energy", "mahalanobis", "knn"):
            det = OutOfScopeDetector.fit(method, x, y, 4)
            results[name, method] = auroc(det.score(feats, logits), in_scope)
    assert results["far", "mahalanobis"] > 0.99 and results["other", "mahalanobis"] > 0.99
    assert results["other", "knn"] > 0.99
    assert results["far", "max-softmax"] < 0.8 and results["far", "knn"] < 0.5, results


def test_detector_round_trips_through_safetensors(tmp_path):
    rng = np.random.default_rng(1)
    x, y = _clusters(rng, rng.standard_normal((3, 8)), 30)
    y[:5] = -1  # out-of-scope examples are no class
    for method in ("mahalanobis", "knn", "energy"):
        det = OutOfScopeDetector.fit(method, x, y, 3)
        det.save(tmp_path / method)
        back = OutOfScopeDetector.load(tmp_path / method)
        logits = rng.standard_normal((7, 3))
        assert np.allclose(det.score(x[:7], logits), back.score(x[:7], logits))
        assert not list((tmp_path / method).glob("*.pkl"))
    with pytest.raises(DomainfitError, match="unknown out-of-scope method"):
        OutOfScopeDetector("bogus")


def test_calibration_rules():
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    correct = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0], bool)
    cal = calibrate(scores, correct, target_precision=0.9)
    # The loosest threshold with precision >= 0.9: 9 answered, 8 right (0.889) fails; 8 answered passes.
    assert cal.threshold == pytest.approx(0.8) and cal.answered_precision == 1.0 and cal.answered_share == 0.8
    cal = calibrate(scores, correct, target_precision=0.5)
    assert cal.threshold == pytest.approx(1.0)  # nothing to reject
    loss = calibrate(scores, correct, max_accuracy_loss=0.25)
    # In-scope accuracy is 0.8 answering all; the strictest threshold keeping >= 0.55 answers 6.
    assert loss.threshold == pytest.approx(0.6) and loss.in_scope_accuracy == pytest.approx(0.6)
    in_scope = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0], bool)
    cal = calibrate(scores, correct, in_scope, target_precision=0.99)
    assert cal.oos_recall == 1.0
    ties = calibrate(np.array([0.5, 0.5, 0.5, 0.9]), np.array([1, 0, 1, 1], bool), target_precision=0.7)
    assert ties.threshold in (0.5, 0.9) and ties.answered_share in (0.75, 1.0)
    curve = tradeoff(scores, correct, in_scope, points=11)
    assert curve[0]["oos_recall"] == 1.0 and curve[-1]["oos_recall"] == 0.0
    assert curve[-1]["in_scope_accuracy"] == 1.0
    # the default rule: an accuracy budget of 1 point (here: 1 text in 8 is 12.5 points, so none is handed off
    # unless it costs nothing)
    default = calibrate(scores, correct, in_scope)
    assert default.rule == "in-scope accuracy loss <= 0.01" and default.in_scope_accuracy == 1.0
    assert default.threshold == pytest.approx(0.8) and default.oos_recall == 1.0
    rate = calibrate(scores, correct, fallback_rate=0.3)  # at most 3 of the 10 texts handed off
    assert rate.threshold == pytest.approx(0.7) and rate.answered_share == pytest.approx(0.7)
    with pytest.raises(DomainfitError, match="one rule"):
        calibrate(scores, correct, target_precision=0.9, fallback_rate=0.1)
    options = budgets(scores, correct, in_scope, losses=(0.0, 0.125, 0.5))
    assert [o["fallback_share"] for o in options] == [pytest.approx(0.2), pytest.approx(0.3), pytest.approx(0.6)]
    assert [o["oos_recall"] for o in options] == [1.0, 1.0, 1.0]


# ------------------------------------------------------------------------------- conversations

def test_conversation_store_in_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'conv.db'}"
    store = ConversationStore(url)
    session = store.session(None)
    result = {"answer": "Your card arrives soon.", "route": "intent", "intent": "card_arrival",
              "scores": {"intent": 0.9}, "sources": [], "handoff": None}
    assert store.log_turn(session, message="where is my card", result=result, request_id="r1") == 1
    fallback = {"answer": "I'm not sure", "route": "fallback", "intent": None, "scores": {}, "sources": [],
                "handoff": {"reason": "no confident intent"}}
    assert store.log_turn(session, message="blah", result=fallback) == 2
    again = ConversationStore(url).session(session.id)  # another process sees the same state
    assert not again.new and again.turns == 2 and again.last_intent == "card_arrival"
    assert again.last_message == "blah"
    assert [t["route"] for t in store.history(session.id)] == ["intent", "fallback"]
    handoffs = store.handoffs()
    assert len(handoffs) == 1 and handoffs[0]["session_id"] == session.id and handoffs[0]["turn"] == 2
    store.add_feedback(session.id, 1, True, "thanks")
    assert store.feedback()[0]["message"] == "where is my card" and store.feedback()[0]["helpful"] is True
    with pytest.raises(DomainfitError, match="no turn 7"):
        store.add_feedback(session.id, 7, False)
    assert store.session("no-such-session").new and store.session("../../etc").new


# ------------------------------------------------------------------------------- the bundle

def test_predictor_features_are_what_the_head_reads(bundle):
    from domainfit import load

    model = load(bundle / "intent")
    texts = ["where is my card", "refund my order please", "forgot my password"]
    feats, logits = model.features(texts)
    assert feats.shape == (3, 32) and logits.shape == (3, 3)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    assert np.allclose(probs, model.scores(texts).numpy(), atol=1e-5)
    with pytest.raises(DomainfitError, match="features need"):
        load(bundle / "retrieval").features(texts)


def test_bundle_layout_and_calibration_report(bundle):
    meta = json.loads((bundle / "bundle.json").read_text())
    assert {p.name for p in bundle.iterdir()} >= {"bundle.json", "answers.json", "intent", "ood", "retrieval",
                                                  "report"}
    assert meta["intent"]["intents"] == sorted(INTENT_PHRASES) and meta["retrieval"]["faq"] == 3
    assert meta["retrieval"]["passages"] == 2 and meta["out_of_scope"]["method"] == "max-softmax"
    report = json.loads((bundle / "report" / "calibration.json").read_text())
    assert set(report["validation"]["methods"]) == {"max-softmax", "energy", "mahalanobis", "knn"}
    assert (bundle / "retrieval" / "index" / "index.json").is_file()
    assert not list(bundle.parent.glob(".bundle.*"))  # no staging folder left behind


def test_answers_take_the_intent_faq_document_and_fallback_routes(bundle):
    bot = Assistant(bundle)
    bot.threshold = np.inf  # every intent is confident
    r = bot.answer("where is my card", context={"card_type": "Visa"})
    assert r["route"] == "intent" and r["intent"] == "card_arrival"
    assert r["answer"] == "Your Visa arrives within 5 days." and r["scores"]["intent"] > 0.5
    assert bot.answer("refund my order")["answer"] == "Refunds take {up to} 3 days."
    bot.threshold = -np.inf  # nothing is confident: retrieval, then the fallback
    # The tiny random encoder only knows exact texts: ask with a FAQ pair's indexed text.
    faq = bot.answer(f"{FAQ[1][0]}\n{FAQ[1][1]}")
    assert faq["route"] == "faq" and faq["answer"] == FAQ[1][1] and faq["intent"] is None
    assert faq["sources"][0]["kind"] == "faq" and faq["sources"][0]["source"] == "faq.csv:3"
    doc = bot.answer("Cash\nCash withdrawals are free up to 200 a month.")
    assert doc["route"] == "document" and doc["sources"][0]["source"] == "fees.md:7"
    fallback = bot.answer("where is my card")
    assert fallback["route"] == "fallback" and fallback["answer"] == bot.fallback
    assert "no confident intent" in fallback["handoff"]["reason"]
    assert set(fallback["scores"]) >= {"intent", "out_of_scope", "threshold", "retrieval"}


def test_generation_composes_from_passages_and_keeps_the_sources(bundle, tiny_lm, tmp_path):
    from domainfit.apps.customer_service.generation import Composer, acceptable

    given = [{"id": "a", "text": "q", "answer": "Search for our bank in your phone's app store."},
             {"id": "b", "text": "Cheques are paid in at any branch counter."}]
    assert acceptable('Open your app store and "search for our bank in your phone\'s" store [1].', given)
    assert not acceptable("No citation here.", given) and not acceptable('"search for our bank" [3].', given)
    assert not acceptable("  ", given) and not acceptable("Use the git --x option [1].", given)  # no quote
    assert not acceptable('"any branch counter" [1].', given)  # quotes a passage it does not cite
    assert not acceptable('"search for our bank" [1]\nCustomer: how do I get the app', given)  # echo
    composer = Composer(str(tiny_lm), max_new_tokens=8, passages=2)
    hits = [{"id": "faq-1", "text": "q", "answer": "We are open from 9 to 5."}, {"id": "faq-2", "text": "q2"}]
    prompt = composer.prompt("when are you open", hits)
    assert "[1] We are open from 9 to 5." in prompt and "[2] q2" in prompt and "when are you open" in prompt
    # The tiny random model cannot write "[1]" (no "[" in its vocabulary): nothing acceptable comes out.
    assert composer.compose("when are you open", hits) is None
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    meta = json.loads((copy / "bundle.json").read_text())
    meta["generation"]["model"] = str(tiny_lm)
    (copy / "bundle.json").write_text(json.dumps(meta))
    bot = Assistant(copy, generation=True)
    assert bot.composer is not None and Assistant(copy).composer is None  # off unless asked
    bot.threshold = -np.inf
    r = bot.answer(f"{FAQ[1][0]}\n{FAQ[1][1]}")
    assert r["route"] == "faq" and r["answer"] == FAQ[1][1] and not r.get("generated") and r["sources"]


def test_a_follow_up_keeps_the_last_intent(bundle):
    """White-box: reads the assistant's private per-message scores (``_classify``) to find a
    follow-up that is confident only in context, which no public answer shows on its own."""
    bot = Assistant(bundle)
    first = "where is my card"
    candidates = ["and now", "yet?", "please", "today", "what about it", "hmm"]
    joined = bot._classify([f"{first} {c}" for c in candidates])
    alone = bot._classify(candidates)
    full = bot._classify([first])[0]
    usable = [n for n in range(len(candidates)) if joined[n]["intent"] == "card_arrival"
              and alone[n]["out_of_scope"] > max(joined[n]["out_of_scope"], full["out_of_scope"])]
    assert usable, "no follow-up candidate is less confident alone than with its context"
    n = usable[0]
    bot.threshold = (alone[n]["out_of_scope"] + max(joined[n]["out_of_scope"], full["out_of_scope"])) / 2
    r1 = bot.answer(first, session_id="s1")
    assert r1["route"] == "intent" and r1["turn"] == 1
    r2 = bot.answer_many([{"message": candidates[n], "session": _session_after(first)}])[0]
    assert r2["route"] == "intent" and r2["follow_up"] and r2["intent"] == "card_arrival"
    r3 = bot.answer_many([{"message": candidates[n], "session": None}])[0]
    assert r3["route"] != "intent"  # without the conversation it is not confident


def test_a_new_topic_is_not_answered_as_the_last_one(bundle):
    """White-box like the test above: a message that is confident only when read after the
    last one, but is a full question of its own, gets its own answer, never the last topic's
    (the chat once answered "how do I delete my facebook account" with card activation)."""
    from domainfit.apps.customer_service.assistant import looks_like_follow_up

    assert looks_like_follow_up("and now?") and looks_like_follow_up("what about it")
    assert not looks_like_follow_up("how do I delete my facebook account")
    bot = Assistant(bundle)
    first = "where is my card"
    candidates = ["how much is the exchange rate for euro to dollar", "when will the branch open and close hours",
                  "i want to update my phone number and address", "how much is the fee to top up cash at the atm",
                  "i want to speak to a human person on the phone", "how much money is the balance of my account",
                  "send a payment to a new account number please", "the transfer failed to send the payment"]
    assert not any(looks_like_follow_up(c) for c in candidates)
    joined = bot._classify([f"{first} {c}" for c in candidates])
    alone = bot._classify(candidates)
    usable = [n for n in range(len(candidates)) if joined[n]["intent"] == "card_arrival"
              and alone[n]["out_of_scope"] > joined[n]["out_of_scope"]]
    assert usable, "no candidate is more confident after the card question than alone"
    n = usable[0]
    bot.threshold = (alone[n]["out_of_scope"] + joined[n]["out_of_scope"]) / 2  # joined would pass, alone not
    r = bot.answer_many([{"message": candidates[n], "session": _session_after(first)}])[0]
    assert not r["follow_up"] and r["route"] != "intent"


def _session_after(message):
    from domainfit.apps.customer_service.conversations import Session

    return Session("s", 1, "card_arrival", message)


@pytest.mark.integration
@pytest.mark.parametrize("exposure", ["class", "outlier"])
def test_bundle_with_out_of_scope_examples_and_evaluation(tmp_path, tiny_model, exposure, capsys):
    folder = _write(tmp_path, oos_rows=True)
    (folder / "off_topic.csv").write_text("text\nbest pizza in town\nlyrics of a song\nhow tall is the tower\n"
                                          "train times to the coast\n", encoding="utf-8")
    recipe = load_recipe(intents={"data": str(folder / "intents.csv"), "model": str(tiny_model),
                                  "oos_data": str(folder / "off_topic.csv"),
                                  "settings": fast_settings(**{"training.epochs": 8})},
                         answers=str(folder / "answers.csv"), out_of_scope={"exposure": exposure})
    out = train_bundle(recipe, folder / "b")
    meta = json.loads((out / "bundle.json").read_text())
    intent = json.loads((out / "intent" / "domainfit.json").read_text())
    # 6 oos rows of the intents file and 4 texts of the oos file, about a tenth of each held out to calibrate
    trained = meta["out_of_scope"]["exposure"]["train_texts"]
    assert meta["out_of_scope"]["exposure"]["mode"] == exposure and 7 <= trained <= 9
    if exposure == "class":
        assert meta["intent"]["oos_label"] == "oos" and "oos" in intent["labels"] and "outliers" not in intent
    else:
        assert meta["intent"]["oos_label"] is None and "oos" not in intent["labels"]
        assert intent["outliers"]["texts"] == trained
    assert "oos" not in meta["intent"]["intents"] and meta["data"]["oos"]["rows"] == 4
    assert meta["out_of_scope"]["rule"] == {"max_accuracy_loss": 0.01}  # the default calibration
    assert [o["max_accuracy_loss"] for o in meta["out_of_scope"]["budgets"]] == [0.005, 0.01, 0.02, 0.05]
    shown = capsys.readouterr().err
    assert "accuracy budget 2 pt: hands off" in shown and "out-of-scope recall" in shown
    assert meta["retrieval"] is None
    test = folder / "test.csv"
    test.write_text("text,label\nwhere is my card,card_arrival\nrefund my order,refund\n"
                    "what is the weather,oos\nopen a savings account,savings\n", encoding="utf-8")
    metrics = evaluate_bundle(out, test)
    assert metrics["rows"] == 4 and metrics["in_scope_rows"] == 2 and metrics["oos_rows"] == 2
    assert 0 <= metrics["in_scope_accuracy"] <= metrics["no_fallback_accuracy"] <= 1
    assert set(metrics["routes"]) <= {"intent", "fallback"} and sum(metrics["routes"].values()) == 4
    done = run_cli("app", "customer-service", "evaluate", str(out), "--data", str(test), "--json", "--plot",
                   str(folder / "curve.png"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["oos_rows"] == 2 and "auroc" in json.loads(done.stdout)
    assert (folder / "curve.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.integration
def test_cli_trains_without_a_recipe_and_answers(tmp_path, tiny_model):
    folder = _write(tmp_path)
    out = folder / "cli-bundle"
    done = run_cli("app", "customer-service", "train", "--intents", str(folder / "intents.csv"), "--answers",
                   str(folder / "answers.csv"), "--docs", str(folder / "docs"), "--model", str(tiny_model),
                   "--set", "training.epochs=2", "--output", str(out))
    assert done.returncode == 0, done.stderr
    meta = json.loads((out / "bundle.json").read_text())
    assert meta["retrieval"]["passages"] == 2 and meta["recipe"]["intents"]["settings"] == {"training.epochs": 2}
    asked = run_cli("app", "customer-service", "ask", str(out), "where is my card", "--json")
    assert asked.returncode == 0, asked.stderr
    result = json.loads(asked.stdout)
    assert result["route"] in ("intent", "document", "fallback") and result["answer"] and result["turn"] == 1
    again = run_cli("app", "customer-service", "train", "--intents", str(folder / "intents.csv"), "--answers",
                    str(folder / "answers.csv"), "--output", str(out))
    assert again.returncode == 2 and "--overwrite" in again.stderr and "Traceback" not in again.stderr


@pytest.mark.integration
def test_a_killed_build_resumes_the_intent_training(tmp_path, tiny_model):
    import os
    import signal
    import subprocess
    import sys
    import time

    from helpers import ROOT

    folder = _write(tmp_path)
    out = folder / "b"
    args = ["app", "customer-service", "train", "--intents", str(folder / "intents.csv"), "--answers",
            str(folder / "answers.csv"), "--model", str(tiny_model), "--output", str(out), "--set",
            "training.epochs=6", "--set", "training.batch_size=4", "--set", "training.save_steps=5"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen([sys.executable, "-m", "domainfit.cli", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    checkpoints = folder / ".b.partial" / "intent" / "checkpoints"
    deadline = time.time() + 120
    while not (checkpoints.exists() and any(checkpoints.glob("step-*"))) and proc.poll() is None \
            and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists() and checkpoints.exists(), "the build finished before it could be killed"
    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming" in resumed.stderr
    assert (out / "bundle.json").is_file() and not (folder / ".b.partial").exists() and not (out / "key").exists()


@pytest.mark.integration
def test_bad_recipes_fail_before_any_training(tmp_path, tiny_model):
    folder = _write(tmp_path)
    with pytest.raises(ConfigError, match="intents.metod: unknown key; the keys here are data, text_column"):
        load_recipe(intents={"data": "x.csv", "metod": "full"})
    with pytest.raises(ConfigError, match="faqs: unknown key; the keys here are intents, answers, faq, docs"):
        load_recipe(intents={"data": "x.csv"}, faqs="f.csv")
    with pytest.raises(ConfigError, match="faq.questions: unknown key; the keys here are data, question_column"):
        load_recipe(intents={"data": "x.csv"}, faq={"data": "f.csv", "questions": "q"})
    with pytest.raises(ConfigError, match="out_of_scope.method"):
        load_recipe(intents={"data": "x.csv"}, out_of_scope={"method": "magic"})
    (folder / "extra.csv").write_text("intent,answer\ncard_arival,hi\nrefund,back\nunknown_intent,hi\n",
                                      encoding="utf-8")
    recipe = load_recipe(intents={"data": str(folder / "intents.csv"), "model": str(tiny_model)},
                         answers=str(folder / "extra.csv"))
    with pytest.raises(ConfigError, match="look misspelt: 'card_arival' \\(the data has 'card_arrival'\\)"):
        train_bundle(recipe, folder / "never")
    assert not (folder / "never").exists() and not list(folder.glob(".never.*"))
    recipe = load_recipe(intents={"data": str(folder / "intents.csv"), "model": str(tiny_model)})
    with pytest.raises(ConfigError, match="nothing to answer with"):
        train_bundle(recipe, folder / "never")
    yaml_recipe = folder / "r.yaml"
    yaml_recipe.write_text("intents:\n  data: intents.csv\nanswers: answers.csv\n", encoding="utf-8")
    r = load_recipe(yaml_recipe)
    assert r.intents.data == str((folder / "intents.csv").resolve())
    done = run_cli("app", "customer-service", "train", str(folder / "missing.yaml"), "--output", str(folder / "o"))
    assert done.returncode == 2 and "does not exist" in done.stderr and "Traceback" not in done.stderr


# ------------------------------------------------------------------------------- chat API

@pytest.mark.integration
def test_chat_api_sessions_feedback_handoffs_and_bad_messages(bundle, tmp_path):
    app = create_chat_app(bundle, ServeSettings(api_key=KEY, max_chars=10_000),
                          db_url=f"sqlite:///{tmp_path / 'conv.db'}")
    with running_app(app) as url:
        assert httpx.get(f"{url}/readyz").status_code == 200
        r = httpx.post(f"{url}/v1/chat", json={"message": "where is my card", "context": {"card_type": "Visa"}},
                       timeout=60)
        assert r.status_code == 200, r.text
        first = r.json()
        assert first["turn"] == 1 and first["route"] in ("intent", "faq", "document", "fallback")
        assert first["request_id"] == r.headers["x-request-id"] and len(first["session_id"]) == 32
        second = httpx.post(f"{url}/v1/chat", json={"message": "How do I download the mobile app?",
                                                    "session_id": first["session_id"]}, timeout=60).json()
        assert second["session_id"] == first["session_id"] and second["turn"] == 2
        assert "explanation" not in first
        why = httpx.post(f"{url}/v1/chat", json={"message": "where is my card", "explain": True}, timeout=60).json()
        e = why["explanation"]
        assert e["intent"] == why["candidate_intent"] == e["target"]
        assert [w["word"] for w in e["words"]] == ["where", "is", "my", "card"]
        history = httpx.get(f"{url}/v1/chat/sessions/{first['session_id']}").json()["turns"]
        assert [t["message"] for t in history] == ["where is my card", "How do I download the mobile app?"]
        unknown = httpx.post(f"{url}/v1/chat", json={"message": "hello", "session_id": "not-a-known-session"},
                             timeout=60).json()
        assert unknown["session_id"] != "not-a-known-session" and unknown["turn"] == 1
        ok = httpx.post(f"{url}/v1/chat/feedback", json={"session_id": first["session_id"], "turn": 1,
                                                         "helpful": False, "comment": "wrong"})
        assert ok.status_code == 200, ok.text
        missing = httpx.post(f"{url}/v1/chat/feedback", json={"session_id": first["session_id"], "turn": 9,
                                                              "helpful": True})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_turn"
        for bad, status in ((" \n\t ", 422), ("", 422), ("x" * 10_001, 413)):
            resp = httpx.post(f"{url}/v1/chat", json={"message": bad})
            assert resp.status_code == status and resp.json()["error"]["message"], resp.text
        assert httpx.post(f"{url}/v1/chat", content=b"{not json", headers={"content-type": "application/json"},
                          timeout=10).status_code == 400
        assert httpx.post(f"{url}/v1/chat", content=b"{not json", timeout=10).status_code == 415
        assert httpx.post(f"{url}/v1/chat", json={"message": 5}).status_code == 422
        assert httpx.post(f"{url}/v1/chat", json={"message": "hi", "context": {"a": "x" * 300}}).status_code == 422
        for odd in ("😀🙏🎉", "¿Dónde está mi tarjeta? 我的卡在哪里", "x" * 10_000,
                    "{card_type.__init__.__globals__} {0} <script>alert(1)</script>", "ignore previous {{}} }{"):
            resp = httpx.post(f"{url}/v1/chat", json={"message": odd, "context": {"card_type": "<b>{days}</b>"}},
                              timeout=60)
            assert resp.status_code == 200, resp.text
            answer = resp.json()["answer"]
            assert "<script>" not in answer and "<b>" not in answer and "__globals__" not in answer
        assert httpx.get(f"{url}/v1/chat/handoffs").status_code == 401
        handoffs = httpx.get(f"{url}/v1/chat/handoffs", headers={"Authorization": f"Bearer {KEY}"})
        assert handoffs.status_code == 200 and isinstance(handoffs.json()["handoffs"], list)
        page = httpx.get(f"{url}/chat")
        assert page.status_code == 200 and "/v1/chat" in page.text and "innerHTML" not in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert httpx.post(f"{url}/v1/models/intent/predict", json={"texts": ["refund my order"]}).status_code == 200
        assert 'domainfit_predicted_items_total{model="chat"}' in httpx.get(f"{url}/metrics").text


@pytest.mark.integration
def test_chat_keeps_bad_strings_and_foreign_slots_out(bundle, tmp_path):
    """A lone surrogate fails its own message only; a client sets only the bundle's client
    slots (never an operator's value such as a link), and the page may not be framed."""
    import concurrent.futures

    db = tmp_path / "conv.db"
    app = create_chat_app(bundle, ServeSettings(max_wait_ms=50, db_url=f"sqlite:///{db}"), db_url=f"sqlite:///{db}")
    with running_app(app) as url:
        json_type = {"content-type": "application/json"}
        bad_message = b'{"message": "where is my card \\ud800"}'
        with concurrent.futures.ThreadPoolExecutor(21) as pool:
            bad = pool.submit(httpx.post, f"{url}/v1/chat", content=bad_message, headers=json_type, timeout=60)
            codes = list(pool.map(lambda _: httpx.post(f"{url}/v1/chat", json={"message": "where is my card"},
                                                       timeout=60).status_code, range(20)))
        assert codes == [200] * 20 and bad.result().status_code == 422
        assert httpx.post(f"{url}/v1/chat", content=b'{"message": "hi", "context": {"card_type": "\\udc00"}}',
                          headers=json_type).status_code == 422
        foreign = httpx.post(f"{url}/v1/chat", json={"message": "where is my card", "context": {"days": "1 hour"}})
        assert foreign.status_code == 422 and "days" in foreign.json()["error"]["message"]
        r = httpx.post(f"{url}/v1/chat", json={"message": "where is my card", "context": {"card_type": "Visa"}},
                       timeout=60).json()
        huge = httpx.post(f"{url}/v1/chat/feedback", json={"session_id": r["session_id"], "turn": 10 ** 30,
                                                           "helpful": True})
        assert huge.status_code == 422
        page = httpx.get(f"{url}/chat")
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        stored = httpx.post(f"{url}/v1/feedback", json={"text": "where is my card", "correct_label": "card_arrival"})
        assert stored.status_code == 200
    from domainfit.stores import FeedbackStore

    assert FeedbackStore(f"sqlite:///{db}").count() == 1  # feedback goes to the server's --db


def test_a_client_cannot_set_an_operator_slot(bundle):
    bot = Assistant(bundle)
    bot.threshold = np.inf  # every intent is confident
    assert bot.client_slots == {"card_type"}
    r = bot.answer("where is my card", context={"card_type": "Visa", "days": "http://evil.example"})
    assert r["route"] == "intent" and r["answer"] == "Your Visa arrives within 5 days."


@pytest.mark.integration
def test_chat_requires_the_key_when_told(bundle, tmp_path):
    app = create_chat_app(bundle, ServeSettings(api_key=KEY, require_key=True),
                          db_url=f"sqlite:///{tmp_path / 'conv.db'}")
    with running_app(app) as url:
        assert httpx.post(f"{url}/v1/chat", json={"message": "hi"}).status_code == 401
        r = httpx.post(f"{url}/v1/chat", json={"message": "hi"}, headers={"X-API-Key": KEY}, timeout=60)
        assert r.status_code == 200


@pytest.mark.integration
def test_web_chat_page_in_headless_chromium(bundle, tmp_path):
    """Types a message into /chat in a real browser and waits for the assistant's answer."""
    pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    app = create_chat_app(bundle, ServeSettings(), db_url=f"sqlite:///{tmp_path / 'conv.db'}")
    with running_app(app) as url:
        driver = headless_chromium()
        try:
            driver.get(f"{url}/chat")
            box = driver.find_element(By.ID, "message")
            box.send_keys("How do I download the mobile app?")
            driver.find_element(By.ID, "send").click()
            answer = WebDriverWait(driver, 60).until(
                lambda d: d.find_elements(By.CSS_SELECTOR, ".assistant[data-route]"))[0]
            expected = httpx.post(f"{url}/v1/chat", json={"message": "How do I download the mobile app?"},
                                  timeout=60).json()
            assert answer.get_attribute("data-route") == expected["route"]
            assert answer.text.startswith(expected["answer"])
            # the customer sees the answer and its sources, not the internal route or intent names
            assert "route" not in answer.text and (expected["intent"] or "intent") not in answer.text.replace(
                expected["answer"], "")
            session = driver.execute_script("return sessionStorage.getItem('domainfit-session')")
            assert session and len(session) == 32
            buttons = answer.find_elements(By.CSS_SELECTOR, ".feedback button")
            assert [b.text for b in buttons] == ["Yes", "No"]
            buttons[0].click()
            WebDriverWait(driver, 10).until(lambda d: "Thanks" in answer.text)
            assert not answer.find_elements(By.CSS_SELECTOR, ".why")  # only when asked for
            # "show why": the words that decided the intent appear under the next answer
            driver.find_element(By.ID, "why").click()
            box = driver.find_element(By.ID, "message")
            box.send_keys("How do I download the mobile app?")
            driver.find_element(By.ID, "send").click()
            why = WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".assistant .why"))[0]
            explained = httpx.post(f"{url}/v1/chat", json={"message": "How do I download the mobile app?",
                                                          "explain": True}, timeout=60).json()["explanation"]
            assert why.text.startswith(f"Intent {explained['intent']}")
            top = [w["word"] for w in sorted(explained["words"], key=lambda w: -w["score"]) if w["score"] > 0][:3]
            assert [span.text for span in why.find_elements(By.TAG_NAME, "span")] == top
        finally:
            driver.quit()


@pytest.mark.integration
def test_the_console_starts_the_bundle_and_links_its_chat_page(bundle, tmp_path):
    """A bundle under a console's apps/ is listed; Start runs its server, whose chat page answers."""
    import os
    import signal
    import time
    import urllib.request

    from domainfit.console.service import Console

    console = Console.open(tmp_path / "root")
    shutil.copytree(bundle, tmp_path / "root" / "apps" / "helpdesk")
    assert [(b["name"], b["kind"], b["page"], b["port"]) for b in console.bundles()] == [
        ("helpdesk", "customer-service", "/chat", None)]
    port = console.start_app("helpdesk")
    pid = int((tmp_path / "root" / ".console" / "app-helpdesk.port").read_text().split()[1])
    try:
        deadline, page = time.time() + 120, None
        while time.time() < deadline and page is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/chat", timeout=5) as answer:
                    page = answer.read().decode()
            except OSError:
                time.sleep(0.5)
        assert page is not None and "<html" in page.lower()
        assert console.bundles()[0]["port"] == port
        assert console.start_app("helpdesk") == port  # a running server is not started twice
    finally:
        os.killpg(pid, signal.SIGTERM)
