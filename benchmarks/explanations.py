"""How faithful are the explanations? ERASER-style comprehensiveness and sufficiency.

    python benchmarks/explanations.py [--texts 300] [--lime-samples 1000] [--shap-evals 500]

For 300 seeded test texts each of Banking77 and Financial PhraseBank, every method scores the
words of the text for the label the model predicts; then (DeYoung et al. 2020, ERASER):

* comprehensiveness: ``p(text) - p(text without its top k% words)`` — high when the words
  a method ranks first are the ones the prediction rests on;
* sufficiency: ``p(text) - p(only the top k% words)`` — low when they are enough;

each averaged over k = 1, 5, 10, 20, 50% (AOPC; at least one word per k). Methods: domainfit's
``occlusion``, ``integrated-gradients`` and ``gradient-x-input``
(:mod:`domainfit.inference.explain`), a seeded random ranking, attention weights (the last
layer's attention each word receives, averaged over heads and positions), and as peers from
their own libraries SHAP's partition explainer and LIME (both over the same words, removing a
word as its mask), with wall-clock seconds per explanation (2 threads, one text at a time,
as a user asks). The probabilities are the artifact's own (``Predictor.scores``: with its
n-gram companion where it has one). Results: results/explanations.json and RESULTS.md.

The models are the default-settings ones of benchmarks/quality.py
(benchmarks/work/quality/banking77-default, .../financial_phrasebank-default), trained here
with default settings if missing.
"""

from __future__ import annotations

import argparse
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
OURS = ("occlusion", "integrated-gradients", "gradient-x-input")


def _model(dataset: str) -> Path:
    path = HERE / "work" / "quality" / DATASETS[dataset]
    if not (path / "domainfit.json").is_file():
        subprocess.run([sys.executable, "-m", "domainfit.cli", "train", "--data",
                        str(SHARED_DATA / dataset / "train.csv"), "--output", str(path), "--on-bad-rows", "skip"],
                       check=True)
    return path


def _keep(text: str, spans: list[tuple[int, int]], keep: set[int]) -> str:
    return " ".join(text[s:e] for i, (s, e) in enumerate(spans) if i in keep)


def _aopc(predictor, text: str, spans, scores: np.ndarray, column: int, base: float) -> tuple[float, float]:
    """Comprehensiveness and sufficiency, averaged over ``FRACTIONS``."""
    order = list(np.argsort(-np.asarray(scores), kind="stable"))
    variants = []
    for k in FRACTIONS:
        top = set(order[:max(1, math.ceil(k * len(spans)))])
        variants.append(_keep(text, spans, set(range(len(spans))) - top))
        variants.append(_keep(text, spans, top))
    probs = predictor.scores(variants).numpy()[:, column]
    return float(np.mean(base - probs[0::2])), float(np.mean(base - probs[1::2]))


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


def run_dataset(dataset: str, n: int, lime_samples: int, shap_evals: int, seed: int = 0) -> dict:
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
    lime_explainer = LimeTextExplainer(class_names=predictor.labels, bow=False,
                                       split_expression=lambda s: [s[a:b] for a, b in split(s)], random_state=seed)
    methods = list(OURS) + ["random", "attention", "shap-partition", "lime"]
    results = {m: {"comprehensiveness": [], "sufficiency": [], "seconds": []} for m in methods}
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
            results[m]["comprehensiveness"].append(comp)
            results[m]["sufficiency"].append(suff)
            results[m]["seconds"].append(seconds)
        if (t_no + 1) % 25 == 0:
            print(f"{dataset}: {t_no + 1}/{n} " + " ".join(
                f"{m} {np.mean(results[m]['comprehensiveness']):.3f}" for m in methods), flush=True)
    words = [len(split(t)) for t in texts]
    summary = {m: {k: float(np.mean(v)) for k, v in r.items()} | {"seconds_p95": float(np.percentile(r["seconds"], 95))}
               for m, r in results.items()}
    return {"model": str(_model(dataset).relative_to(HERE.parent)), "texts": n, "mean_words": float(np.mean(words)),
            "blended": hasattr(predictor.model, "inner"), "methods": summary}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=300)
    ap.add_argument("--lime-samples", type=int, default=1000)
    ap.add_argument("--shap-evals", type=int, default=500)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    args = ap.parse_args()

    from domainfit.inference.explain import AUTO_ORDER

    command = COMMAND + "".join(f" --{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                                if v != ap.get_default(k))  # the exact command, for a partial run
    runs = {d: run_dataset(d, args.texts, args.lime_samples, args.shap_evals) for d in args.datasets.split(",")}
    default = AUTO_ORDER[0]
    checks = {}
    for d, r in runs.items():
        ms = r["methods"]
        ours = ms[default]
        peers = [ms["shap-partition"], ms["lime"]]
        checks[d] = {
            "vs_random": ours["comprehensiveness"] / max(ms["random"]["comprehensiveness"], 1e-9),
            "at_least_peers": all(ours["comprehensiveness"] >= p["comprehensiveness"] for p in peers),
            "time_share_of_fastest_peer": ours["seconds"] / min(p["seconds"] for p in peers),
            "seconds": ours["seconds"],
        }
    m = machine()
    write_results("explanations", {"command": command, "fractions": FRACTIONS, "lime_samples": args.lime_samples,
                                   "shap_max_evals": args.shap_evals, "default_method": default, "datasets": runs,
                                   "checks": checks, "machine": m})
    lines = []
    for d, r in runs.items():
        lines.append(f"\n**{d}** ({r['texts']} test texts, {r['mean_words']:.1f} words on average; model "
                     f"`{r['model']}`{', with its n-gram companion' if r['blended'] else ''}):\n")
        lines.append("| method | comprehensiveness ↑ | sufficiency ↓ | s / explanation | p95 s |\n|---|---|---|---|---|")
        for name, v in sorted(r["methods"].items(), key=lambda kv: -kv[1]["comprehensiveness"]):
            shown = f"**{name}** (auto)" if name == default else name
            lines.append(f"| {shown} | {v['comprehensiveness']:.4f} | {v['sufficiency']:.4f} | {v['seconds']:.4f} | "
                         f"{v['seconds_p95']:.4f} |")
        c = checks[d]
        lines.append(f"\n{default}: comprehensiveness {c['vs_random']:.1f}× random's, "
                     f"{'at least' if c['at_least_peers'] else 'below'} SHAP's and LIME's, in "
                     f"{c['time_share_of_fastest_peer']:.3f}× the faster peer's time ({c['seconds']:.3f} s).")
    body = (f"## Explanations (issue 20)\n\nCommand: `{command}`. ERASER comprehensiveness / sufficiency (AOPC over "
            f"the top {', '.join(f'{int(f * 100)}' for f in FRACTIONS)}% of words) for the predicted label; SHAP "
            f"partition with max_evals {args.shap_evals}, LIME with {args.lime_samples} samples, both over the same "
            f"words. CPU: {m.get('cpu_model', '?')} ({', '.join(m.get('instruction_sets', []))}), "
            f"{m.get('threads', '?')} threads.\n" + "\n".join(lines) + "\n")
    replace_section(body.splitlines()[0], body)
    print(body)


if __name__ == "__main__":
    main()
