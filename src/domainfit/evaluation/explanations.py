"""``report/explanations.html``: the model's most confident mistakes, each text with the
words that decided the prediction highlighted (green pushed towards the predicted label, red
away from it), the label it should have been, and the most similar training examples where
the model stores them. One self-contained file: no script, no external style."""

from __future__ import annotations

from html import escape
from pathlib import Path

__all__ = ["EXPLANATIONS_FILE", "highlighted", "write_explanations_html"]

EXPLANATIONS_FILE = "explanations.html"

_STYLE = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
.case{border:1px solid #ddd;border-radius:6px;padding:.8rem 1rem;margin:1rem 0}
.text{font-size:1.1rem;line-height:2}.w{padding:.1rem .15rem;border-radius:3px}
.meta{color:#555;font-size:.9rem}.ev{color:#555;font-size:.85rem;margin:.2rem 0 0 1rem}
.legend span{padding:.1rem .4rem;border-radius:3px;margin-right:.5rem}"""


def highlighted(text: str, words: list[dict]) -> str:
    """``text`` as HTML, each explained word in a span whose colour shows its score (green
    positive, red negative, stronger for larger scores; ``title`` holds the number)."""
    top = max((abs(w["score"]) for w in words), default=0.0) or 1.0
    out, at = [], 0
    for w in sorted(words, key=lambda w: w["start"]):
        if w["start"] < at:
            continue
        out.append(escape(text[at:w["start"]]))
        alpha = min(abs(w["score"]) / top, 1.0) * 0.75
        colour = f"rgba(22,163,74,{alpha:.2f})" if w["score"] >= 0 else f"rgba(220,38,38,{alpha:.2f})"
        out.append(f'<span class="w" style="background:{colour}" title="{w["score"]:+.4f}">'
                   f'{escape(text[w["start"]:w["end"]])}</span>')
        at = w["end"]
    out.append(escape(text[at:]))
    return "".join(out)


def write_explanations_html(path: str | Path, cases: list[dict], title: str) -> Path:
    """Write the page. ``cases``: explained records (``text``, ``label``, ``score``,
    ``explanation``) with ``gold`` (the right label), ``line`` (where the text is in its file,
    or None) and optionally ``evidence``."""
    path = Path(path)
    parts = [f"<!doctype html><html lang=en><meta charset=utf-8><title>{escape(title)}</title>",
             f"<style>{_STYLE}</style><h1>{escape(title)}</h1>",
             "<p>The model's most confident mistakes, most confident first. Each word is coloured by how much it "
             "pushed the model towards the label it predicted:</p><p class=legend>"
             "<span style='background:rgba(22,163,74,.6)'>towards</span>"
             "<span style='background:rgba(220,38,38,.6)'>away from</span> (hover a word for its score).</p>"]
    if not cases:
        parts.append("<p>No mistakes to show.</p>")
    for case in cases:
        e = case["explanation"]
        where = f"line {case['line']} · " if case.get("line") is not None else ""
        parts.append(f"<div class=case><div class=meta>{where}predicted <b>{escape(str(case['label']))}</b> "
                     f"({case['score']:.3f}), should be <b>{escape(str(case['gold']))}</b> · {escape(e['method'])}"
                     f"</div><div class=text>{highlighted(case['text'], e['words'])}</div>")
        for hit in case.get("evidence", []):
            parts.append(f"<div class=ev>similar training example ({hit['similarity']:.2f}): "
                         f"{escape(hit['text'])} → <b>{escape(str(hit['label']))}</b></div>")
        parts.append("</div>")
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path
