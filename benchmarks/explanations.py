"""How faithful are the explanations? ERASER-style comprehensiveness and sufficiency.

    python benchmarks/explanations.py [--texts 300] [--lime-samples 1000] [--shap-evals 500]
    python benchmarks/explanations.py --methods deletion   # add a method to an earlier full run

For 300 seeded test texts each of Banking77 and Financial PhraseBank, every method scores the
words of the text for the label the model predicts; then (DeYoung et al. 2020, ERASER):

* comprehensiveness: ``p(text) - p(text without its top k% words)`` — high when the words
  a method ranks first are the ones the prediction rests on;
* sufficiency: ``p(text) - p(only the top k% words)`` — low when they are enough;

each averaged over k = 1, 5, 10, 20, 50% (AOPC; at least one word per k). A word is removed
by deleting it from the text (:func:`domainfit.data.tokens.remove_spans`, what occlusion
does), and every perturbing method removes words the same way, so that each is measured on
the perturbation it was given. Methods: domainfit's ``occlusion``, ``deletion``,
``integrated-gradients`` and ``gradient-x-input`` (:mod:`domainfit.inference.explain`), a
seeded random ranking, attention weights (the last layer's attention each word receives,
averaged over heads and positions), and as peers from their own libraries SHAP's partition
explainer and LIME (both over the same words; SHAP's text masker with an empty mask token,
LIME with ``mask_string=""`` instead of its default placeholder word), with wall-clock
seconds per explanation (2 threads, one text at a time, as a user asks). The probabilities
are the artifact's own (``Predictor.scores``: with its n-gram companion where it has one).
Results: results/explanations.json and RESULTS.md.

The models are the default-settings ones of benchmarks/quality.py
(benchmarks/work/quality/banking77-default, .../financial_phrasebank-default), trained here
with default settings if missing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _common import SHARED_DATA, machine, read_csv, replace_section, write_results  # noqa: E402

HERE = Path(__file__).resolve().parent
COMMAND = "python benchmarks/explanations.py"
FRACTIONS = (0.01, 0.05, 0.1, 0.2, 0.5)
DATASETS = {"banking77": "banking77-default", "financial_phrasebank": "financial_phrasebank-default"}
OURS = ("occlusion", "deletion", "integrated-gradients", "gradient-x-input")


def _model(dataset: str) -> Path:
    path = HERE / "work" / "quality" / DATASETS[dataset]
    if not (path / "domainfit.json").is_file():
        subprocess.run([sys.executable, "-m", "domainfit.cli", "train", "--data",
                        str(SHARED_DATA / dataset / "train.csv"), "--output", str(path), "--on-bad-rows", "skip"],
                       check=True)
    return path


def _aopc(predictor, text: str, spans, scores: np.ndarray, column: int, base: float) -> tuple[np.ndarray, np.ndarray]:
    """Comprehensiveness and sufficiency at each of ``FRACTIONS``."""
    from domainfit.data.tokens import remove_spans

    order = list(np.argsort(-np.asarray(scores), kind="stable"))
    variants = []
    for k in FRACTIONS:
        top = set(order[:max(1, math.ceil(k * len(spans)))])
        variants.append(remove_spans(text, [spans[i] for i in top]))
        variants.append(remove_spans(text, [span for i, span in enumerate(spans) if i not in top]))
    probs = predictor.scores(variants).numpy()[:, column]
    return base - probs[0::2], base - probs[1::2]


def _attention(predictor, text: str, spans) -> np.ndarray:
    """The attention each word receives in the last layer (heads and query positions
    averaged), summed over its word pieces."""
    import torch

    model = getattr(predictor.model, "inner", predictor.model)
    encoder = model.encoder
    enc = predictor.tokenizer(text, truncation=True, max_length=predictor.max_length, return_offsets_mapping=True,
                              return_tensors="pt")
    offsets = enc.pop("offset_mapping")[0].tolist()
    with torch.no_grad():
        out = encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], output_attentions=True)
    received = out.attentions[-1][0].float().mean(0).mean(0).numpy()  # (pieces,)
    scores = np.zeros(len(spans))
    for piece, (start, end) in enumerate(offsets):
        if end <= start:
            continue
        for i, (s, e) in enumerate(spans):
            if s <= start < e:
                scores[i] += received[piece]
                break
    return scores


class _WordTokenizer:
    """A tokenizer over our words for SHAP's text masker (ids and offsets are all it reads);
    its mask token is the empty string, so a masked word is left out, as in the evaluation."""

    mask_token, mask_token_id = "", 0

    def __init__(self, split):
        self.split = split

    def __call__(self, text, return_offsets_mapping=True, **_):
        spans = self.split(text)
        return {"input_ids": list(range(1, len(spans) + 1)), "offset_mapping": spans}


def run_dataset(dataset: str, n: int, lime_samples: int, shap_evals: int, seed: int = 0,
                only: list[str] | None = None) -> dict:
    import shap
    import torch
    from lime.lime_text import LimeTextExplainer

    import domainfit
    from domainfit.data.tokens import split_words

    predictor = domainfit.load(_model(dataset))
    encoder = getattr(predictor.model, "inner", predictor.model).encoder
    encoder.set_attn_implementation("eager")  # attention weights for the attention baseline
    texts, _ = read_csv(SHARED_DATA / dataset / "test.csv")
    rng = np.random.default_rng(seed)
    texts = [texts[i] for i in rng.choice(len(texts), n, replace=False)]

    def split(text):
        return split_words(text, predictor.word_split)

    def proba(batch):
        batch = [str(t) for t in batch]
        return predictor.scores(batch).numpy() if batch else np.zeros((0, len(predictor.labels)))

    shap_explainer = shap.Explainer(proba, shap.maskers.Text(_WordTokenizer(split), collapse_mask_token=True),
                                    algorithm="partition", output_names=predictor.labels)
    lime_explainer = LimeTextExplainer(class_names=predictor.labels, bow=False, mask_string="",
                                       split_expression=lambda s: [s[a:b] for a, b in split(s)], random_state=seed)
    methods = list(OURS) + ["random", "attention", "shap-partition", "lime"]
    if only:
        unknown = set(only) - set(methods)
        if unknown:
            sys.exit(f"unknown methods: {', '.join(sorted(unknown))} (choose from {', '.join(methods)})")
        methods = [m for m in methods if m in only]
    results = {m: {"comprehensiveness": [], "sufficiency": [], "seconds": [], "by_k": []} for m in methods}
    base_probs = predictor.scores(texts).numpy()
    torch.set_num_threads(2)
    for t_no, text in enumerate(texts):
        spans = split(text)
        column = int(base_probs[t_no].argmax())
        base = float(base_probs[t_no, column])
        target = predictor.labels[column]
        for m in methods:
            started = time.perf_counter()
            if m in OURS:
                record = predictor.explain(text, target=target, method=m)[0]["explanation"]
                scores = np.array([w["score"] for w in record["words"]])
            elif m == "random":
                scores = np.random.default_rng(seed * 100003 + t_no).random(len(spans))
            elif m == "attention":
                scores = _attention(predictor, text, spans)
            elif m == "shap-partition":
                values = shap_explainer([text], max_evals=shap_evals, silent=True)
                scores = np.asarray(values.values[0])[:, column]
            else:
                exp = lime_explainer.explain_instance(text, proba, labels=[column], num_features=len(spans),
                                                      num_samples=lime_samples)
                scores = np.zeros(len(spans))
                for index, weight in exp.as_map()[column]:
                    scores[index] = weight
            seconds = time.perf_counter() - started
            if len(scores) != len(spans):
                raise RuntimeError(f"{m}: {len(scores)} scores for {len(spans)} words of {text!r}")
            comp, suff = _aopc(predictor, text, spans, scores, column, base)
            results[m]["comprehensiveness"].append(float(comp.mean()))
            results[m]["sufficiency"].append(float(suff.mean()))
            results[m]["by_k"].append(comp)
            results[m]["seconds"].append(seconds)
        if (t_no + 1) % 25 == 0:
            print(f"{dataset}: {t_no + 1}/{n} " + " ".join(
                f"{m} {np.mean(results[m]['comprehensiveness']):.3f}" for m in methods), flush=True)
    words = [len(split(t)) for t in texts]
    summary = {m: {k: float(np.mean(v)) for k, v in r.items() if k != "by_k"}
               | {"seconds_p95": float(np.percentile(r["seconds"], 95)),
                  "comprehensiveness_by_k": dict(zip((f"{int(f * 100)}%" for f in FRACTIONS),
                                                     np.mean(r["by_k"], axis=0).round(4).tolist()))}
               for m, r in results.items()}
    return {"model": str(_model(dataset).relative_to(HERE.parent)), "texts": n, "mean_words": float(np.mean(words)),
            "blended": hasattr(predictor.model, "inner"), "methods": summary}


def _checks(runs: dict, default: str) -> dict:
    checks = {}
    for d, r in runs.items():
        ms = r["methods"]
        peers = [ms["shap-partition"], ms["lime"]]
        checks[d] = {}
        for name in (m for m in OURS if m in ms):
            ours = ms[name]
            checks[d][name] = {
                "vs_random": ours["comprehensiveness"] / max(ms["random"]["comprehensiveness"], 1e-9),
                "at_least_peers": all(ours["comprehensiveness"] >= p["comprehensiveness"] for p in peers),
                "time_share_of_fastest_peer": ours["seconds"] / min(p["seconds"] for p in peers),
                "seconds": ours["seconds"],
            }
    return checks


def _section(payload: dict) -> str:
    default, m = payload["default_method"], payload["machine"]
    lines = []
    for d, r in payload["datasets"].items():
        lines.append(f"\n**{d}** ({r['texts']} test texts, {r['mean_words']:.1f} words on average; model "
                     f"`{r['model']}`{', with its n-gram companion' if r['blended'] else ''}):\n")
        lines.append("| method | comprehensiveness ↑ | at 1 / 5 / 10 / 20 / 50% | sufficiency ↓ | s / explanation | p95 s |\n"
                     "|---|---|---|---|---|---|")
        for name, v in sorted(r["methods"].items(), key=lambda kv: -kv[1]["comprehensiveness"]):
            shown = f"**{name}** (auto)" if name == default else name
            by_k = " / ".join(f"{x:.3f}" for x in v["comprehensiveness_by_k"].values())
            lines.append(f"| {shown} | {v['comprehensiveness']:.4f} | {by_k} | {v['sufficiency']:.4f} | "
                         f"{v['seconds']:.4f} | {v['seconds_p95']:.4f} |")
        lines.append("")
        for name, c in payload["checks"][d].items():
            if name in (default, "deletion"):
                lines.append(f"{name}: comprehensiveness {c['vs_random']:.1f}× random's, "
                             f"{'at least' if c['at_least_peers'] else 'below'} SHAP's and LIME's, in "
                             f"{c['time_share_of_fastest_peer']:.3f}× the faster peer's time ({c['seconds']:.3f} s "
                             "per explanation).")
    later = "".join(f" Added later on the same texts: {', '.join(a['methods'])} (`{a['command']}`)."
                    for a in payload.get("added", []))
    return (f"## Explanations (issue 20)\n\nCommand: `{payload['command']}`.{later} ERASER comprehensiveness / "
            f"sufficiency (AOPC over the top {', '.join(f'{int(f * 100)}' for f in FRACTIONS)}% of words, a word "
            f"removed by deleting it from the text) for the predicted label; SHAP partition with max_evals "
            f"{payload['shap_max_evals']}, LIME with {payload['lime_samples']} samples, both over the same words and "
            f"deleting the words they mask. CPU: {m.get('cpu_model', '?')} "
            f"({', '.join(m.get('instruction_sets', []))}), {m.get('threads', '?')} threads.\n" + "\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=300)
    ap.add_argument("--lime-samples", type=int, default=1000)
    ap.add_argument("--shap-evals", type=int, default=500)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--methods", default=None,
                    help="Run only these methods (comma-separated) and add them to the results of an earlier full "
                         "run with the same texts and settings.")
    args = ap.parse_args()

    from domainfit.inference.explain import AUTO_ORDER

    command = COMMAND + "".join(f" --{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                                if v != ap.get_default(k))  # the exact command, for a partial run
    only = args.methods.split(",") if args.methods else None
    runs = {d: run_dataset(d, args.texts, args.lime_samples, args.shap_evals, only=only)
            for d in args.datasets.split(",")}
    default = AUTO_ORDER[0]
    if only:
        path = HERE / "results" / "explanations.json"
        payload = json.loads(path.read_text(encoding="utf-8"))
        if (payload["lime_samples"], payload["shap_max_evals"]) != (args.lime_samples, args.shap_evals) or any(
                d not in payload["datasets"] or payload["datasets"][d]["texts"] != args.texts for d in runs):
            sys.exit(f"{path}: the earlier run used other texts or settings; run all methods instead.")
        for d, r in runs.items():
            payload["datasets"][d]["methods"].update(r["methods"])
        payload["added"] = [a for a in payload.get("added", []) if set(a["methods"]) - set(only)]
        payload["added"].append({"command": command, "methods": only, "machine": machine()})
        payload["default_method"] = default
    else:
        payload = {"command": command, "fractions": FRACTIONS, "lime_samples": args.lime_samples,
                   "shap_max_evals": args.shap_evals, "default_method": default, "datasets": runs,
                   "machine": machine()}
    payload["checks"] = _checks(payload["datasets"], default)
    write_results("explanations", payload)
    body = _section(payload)
    replace_section(body.splitlines()[0], body)
    print(body)


if __name__ == "__main__":
    main()
