"""Build and read the recommendation bundle.

Layout::

    BUNDLE/
      bundle.json                   what was built: components, hybrid weights, counts, figures
      items.jsonl                   the catalogue (item, text, time, title), items added later included
      item_vectors.safetensors      the items' text vectors (rows in catalogue order)
      interactions.safetensors      the training interactions (users' histories); users.json: their ids
      components/NAME.safetensors   each component's arrays (configs are in bundle.json)
      counts.safetensors            how many users liked each item in training
      encoder/                      the text encoder (new items and texts of interests are embedded with it)
      report/validation.json        how the weights were chosen

Built beside its destination (``.BUNDLE.partial``) and renamed into place at the end; an
interrupted build resumes from the item vectors and the validation weights it had made.
Only JSON and safetensors are read back (no pickle).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np

from ...core.errors import ConfigError, DomainfitError, ManifestError
from ...core.io import atomic_file, inside, replace_folder
from ...core.ui import escape, say
from .components import FitData, make_component
from .data import Interactions, Items, leave_last_out, read_interactions, read_items
from .history import Histories
from .hybrid import choose_weights, held_out_estimate, hit_ranks
from .model import Hybrid, Recommender, embed_items
from .recipe import Recipe

__all__ = ["train_bundle", "read_bundle", "load_recommender", "add_items", "BUNDLE_FILE", "Encoder"]

BUNDLE_FILE = "bundle.json"
KIND = "recommend"
FORMAT_VERSION = 1
_ENCODER_FILES = (".json", ".safetensors", ".txt", ".model")


class Encoder:
    """Texts → L2-normalised vectors with a base encoder folder (loaded on first use)."""

    def __init__(self, path: str | Path, batch_size: int = 128, max_length: int = 128):
        self.path, self.batch_size, self.max_length = Path(path), batch_size, max_length
        self._parts = None

    def __call__(self, texts: list[str]) -> np.ndarray:
        from ...modeling.predict import embed_texts

        if self._parts is None:
            from transformers import AutoTokenizer

            from ...artifact import load_encoder
            from ...modeling import build_task_model

            encoder = build_task_model("embedding", load_encoder(self.path), 0)
            encoder.eval()
            self._parts = (AutoTokenizer.from_pretrained(str(self.path)), encoder)
        tokenizer, encoder = self._parts
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return embed_texts(encoder, tokenizer, list(texts), self.max_length, self.batch_size)


def _copy_encoder(source: Path, dest: Path) -> None:
    """The encoder's config, tokenizer and weights (not code, caches or docs) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for f in source.iterdir():
        if f.is_file() and f.suffix in _ENCODER_FILES:
            shutil.copy2(f, dest / f.name)


def _save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    from safetensors.numpy import save_file

    with atomic_file(path) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp))


def _load_arrays(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


def _write_items(path: Path, items: Items) -> None:
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for item, text, moment, title in zip(items.ids, items.texts, items.times, items.titles):
            f.write(json.dumps({"item": item, "text": text, "time": None if math.isnan(moment) else float(moment),
                                "title": title}, ensure_ascii=False) + "\n")


def _read_items(path: Path) -> Items:
    ids, texts, times, titles = [], [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                ids.append(str(r["item"]))
                texts.append(r.get("text") or "")
                times.append(math.nan if r.get("time") is None else float(r["time"]))
                titles.append(r.get("title") or r["item"])
    return Items(ids, texts, np.array(times, dtype=np.float64), titles)


def _interaction_arrays(data: Interactions) -> dict[str, np.ndarray]:
    return {"user": data.user, "item": data.item, "rating": data.rating, "time": data.time,
            "positive": data.positive.astype(np.uint8)}


def _fit_components(recipe: Recipe, data: Interactions, n_items: int, vectors: np.ndarray,
                    item_times: np.ndarray, label: str) -> dict:
    hist = Histories.from_interactions(data)
    fit = FitData(hist, n_items, vectors, item_times, recipe.seed)
    out = {}
    for name, settings in recipe.components.items():
        settings = dict(settings or {})
        kind = settings.pop("kind", name)
        if kind in ("tower", "als"):
            settings.setdefault("seed", recipe.seed)
        started = time.perf_counter()
        say(f"{label}: fitting {name} ({kind})...")
        comp = make_component(kind, settings)
        out[name] = comp.fit(fit)
        say(f"{label}: {name} fitted in {time.perf_counter() - started:.1f} s")
    return out


def _niche(data: Interactions, counts: np.ndarray, threshold: int, users: np.ndarray | None = None):
    """The users' standardised niche shares (of ``users``; all when ``None``) and the
    ``(mean, std)`` over every user of ``data`` they were standardised with."""
    from .model import niche_share

    share = niche_share(Histories.from_interactions(data), counts, threshold)
    stats = (float(share.mean()), float(share.std()) or 1.0)
    picked = share if users is None else share[users]
    return (picked - stats[0]) / stats[1], stats


def _validation_weights(recipe: Recipe, items: Items, vectors: np.ndarray, data: Interactions,
                        encode) -> tuple[Hybrid, dict]:
    """Fit the components without each user's last ``holdout`` likes, and choose the weights
    that find them."""
    h = recipe.hybrid
    train, held = leave_last_out(data, last=h.holdout)
    if not len(held):
        raise ConfigError("no user has two liked items: nothing to choose the hybrid's weights on "
                          "(check positive_rating)")
    comps = _fit_components(recipe, train, len(items), vectors, items.times, "validation")
    counts = np.bincount(train.item[train.positive], minlength=len(items)).astype(np.float64)
    rng = np.random.default_rng(recipe.seed)
    users = np.unique(held.user)
    if len(users) > h.validation_users:
        users = np.sort(rng.choice(users, h.validation_users, replace=False))
    keep = np.isin(held.user, users)
    rows, targets = np.searchsorted(users, held.user[keep]), held.item[keep]
    scratch = Recommender(items, vectors, comps, Hybrid({}, [0.0] * (len(h.edges) + 1), h.edges), counts, train,
                          encode, exact_limit=recipe.serving.exact_limit)
    hist = Histories.from_interactions(train, users)
    say(f"validation: scoring {len(users):,} users' held-out likes with {len(comps)} components...")
    z = scratch.zscores(hist)
    blocked = hist.seen(len(items)).toarray().astype(bool)
    taste, _ = _niche(train, counts, h.niche_threshold, users)
    hybrid, report = choose_weights(z, rows, targets, blocked, counts, niche=taste, edges=tuple(h.edges), k=h.k,
                                    cold_threshold=h.cold_threshold, cold_weight=h.cold_weight, rounds=h.rounds)
    hybrid.niche_threshold = h.niche_threshold
    if h.estimate_folds >= 2:
        say(f"validation: estimating the blend on users it was not chosen on ({h.estimate_folds} folds)...")
    report["held_out"] = held_out_estimate(z, rows, targets, blocked, counts, niche=taste, folds=h.estimate_folds,
                                           seed=recipe.seed, edges=tuple(h.edges), k=h.k,
                                           cold_threshold=h.cold_threshold, cold_weight=h.cold_weight,
                                           rounds=h.rounds)
    # Each component alone, for the report.
    alone = {}
    for name, values in z.items():
        S = values.copy()
        S[blocked] = -np.inf
        hit = hit_ranks(S, rows, targets) < h.k
        cold = counts[targets] < h.cold_threshold
        alone[name] = {"recall": float(hit.mean()), "cold_recall": float(hit[cold].mean()) if cold.any() else 0.0}
    report["components_alone"] = alone
    return hybrid, report


def train_bundle(recipe: Recipe, output: str | Path, *, overwrite: bool = False) -> Path:
    """Build a recommendation bundle from a recipe into ``output``; returns its path."""
    from ...modeling import resolve_model

    out = Path(output)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise ConfigError(f"{out} exists and is not empty; pass --overwrite to replace it.")
    started = time.perf_counter()
    # Everything that can be wrong with the inputs is found before any training.
    items = read_items(recipe.items, recipe.columns.items)
    data = read_interactions(recipe.interactions, items, recipe.columns.interactions,
                             threshold=recipe.positive_rating, on_unknown_items=recipe.on_unknown_items)
    base = resolve_model(recipe.model)
    say(f"Catalogue: {len(items):,} items ({items.empty_text:,} without text); interactions: {len(data):,} from "
        f"{len(data.users):,} users, {int(data.positive.sum()):,} likes"
        + (f"; {data.merged:,} repeated user-item pairs merged (latest kept)" if data.merged else "")
        + (f"; {data.unknown_items:,} rows naming unknown items left out" if getattr(data, "unknown_items", 0)
           else "") + ".")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial"
    fingerprint = hashlib.sha256()
    for f in (recipe.items, recipe.interactions):
        fingerprint.update(Path(f).read_bytes())
    key = hashlib.sha256((recipe.model_dump_json() + fingerprint.hexdigest() + str(base.path)).encode()).hexdigest()
    if staging.exists() and (not (staging / "key").is_file() or (staging / "key").read_text() != key):
        shutil.rmtree(staging)
    staging.mkdir(exist_ok=True)
    (staging / "key").write_text(key)
    try:
        if not (staging / "encoder" / "config.json").is_file():
            _copy_encoder(base.path, staging / "encoder")
        encode = Encoder(staging / "encoder")
        vectors_file = staging / "item_vectors.safetensors"
        if vectors_file.is_file():
            say("Item vectors: made by an earlier, interrupted build; reusing them.")
            vectors = _load_arrays(vectors_file)["vectors"]
        else:
            say(f"Embedding {len(items):,} item texts with {escape(base.name)}...")
            probe = encode(["probe"])
            vectors = embed_items(items.texts, encode, probe.shape[1])
            _save_arrays(vectors_file, {"vectors": vectors})
        report_dir = staging / "report"
        report_dir.mkdir(exist_ok=True)
        validation_file = report_dir / "validation.json"
        if validation_file.is_file():
            say("Hybrid weights: chosen by an earlier, interrupted build; reusing them.")
            report = json.loads(validation_file.read_text())
            hybrid = Hybrid(**report["hybrid"])
        else:
            hybrid, report = _validation_weights(recipe, items, vectors, data, encode)
            report["hybrid"] = hybrid.to_dict()
            with atomic_file(validation_file) as tmp:
                tmp.write_text(json.dumps(report, indent=2) + "\n")
        chosen = report["chosen"]
        k = recipe.hybrid.k
        say(f"Hybrid weights chosen on validation: recall@{k} {chosen['recall']:.3f}, cold "
            f"recall@{k} {chosen['cold_recall']:.3f} ({report['validation_users']:,} users).")
        held = report.get("held_out")
        if held:
            say(f"Expected on other users (each of {held['folds']} folds scored with weights chosen on the others): "
                f"recall@{k} {held['recall']:.3f}, cold recall@{k} {held['cold_recall']:.3f} "
                f"({held['cold_targets']:,} cold targets).")
        comps = _fit_components(recipe, data, len(items), vectors, items.times, "final")
        final_counts = np.bincount(data.item[data.positive], minlength=len(items)).astype(np.float64)
        hybrid.niche_stats = _niche(data, final_counts, hybrid.niche_threshold)[1]
        comp_dir = staging / "components"
        comp_dir.mkdir(exist_ok=True)
        manifest_components = {}
        for name, comp in comps.items():
            _save_arrays(comp_dir / f"{name}.safetensors", comp.arrays())
            manifest_components[name] = {"kind": comp.name, "config": comp.config(),
                                         "path": f"{name}.safetensors"}
        _save_arrays(staging / "interactions.safetensors", _interaction_arrays(data))
        (staging / "users.json").write_text(json.dumps(data.users, ensure_ascii=False) + "\n", encoding="utf-8")
        _write_items(staging / "items.jsonl", items)
        counts = np.bincount(data.item[data.positive], minlength=len(items))
        _save_arrays(staging / "counts.safetensors", {"counts": counts.astype(np.float64)})
        from ...artifact import build_bundle_manifest

        meta = build_bundle_manifest(KIND, FORMAT_VERSION, {
            "items": {"path": "items.jsonl", "count": len(items), "trained_on": len(items),
                      "vectors": "item_vectors.safetensors"},
            "interactions": {"path": "interactions.safetensors", "users": "users.json", "count": len(data),
                             "positives": int(data.positive.sum()), "merged": data.merged},
            "counts": "counts.safetensors",
            "encoder": {"path": "encoder", "source": base.name},
            "components": manifest_components,
            "hybrid": hybrid.to_dict(),
            "validation": {**{k: report[k] for k in ("chosen", "start", "validation_users", "cold_targets", "k")},
                           "held_out": report.get("held_out")},
            "serving": recipe.serving.model_dump(),
            "recipe": json.loads(recipe.model_dump_json()),
            "seconds": round(time.perf_counter() - started, 1),
        })
        (staging / BUNDLE_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (staging / "key").unlink()
        replace_folder(staging, out)
    except DomainfitError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    say(f"[green]Saved[/] {escape(str(out))}: {len(items):,} items, {len(data.users):,} users, components "
        f"{', '.join(comps)} (validation recall@{recipe.hybrid.k} {chosen['recall']:.3f}, cold "
        f"{chosen['cold_recall']:.3f}).")
    return out


def read_bundle(path: str | Path) -> dict:
    """The bundle's manifest, checked (kind, format, and every part inside the bundle).

    Raises:
        ManifestError: a missing or bad ``bundle.json``, or a part outside the bundle.
    """
    from ...artifact import read_bundle_manifest

    path = Path(path)
    meta = read_bundle_manifest(path, KIND, FORMAT_VERSION, "domainfit app recommend train")
    where = path / BUNDLE_FILE
    try:
        parts = [meta["items"]["path"], meta["items"]["vectors"], meta["interactions"]["path"],
                 meta["interactions"]["users"], meta["counts"], meta["encoder"]["path"], "components"]
        for name in parts + [c["path"] for c in meta["components"].values()]:
            if not isinstance(name, str):
                raise ManifestError(f"{where}: a part is not named by a string")
        for name in parts:
            inside(path, name)
        for c in meta["components"].values():
            inside(path / "components", c["path"])
        hybrid = meta["hybrid"]
        Hybrid(**hybrid)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ManifestError(f"{where}: missing or bad field ({exc})") from None
    return meta


def load_recommender(path: str | Path) -> Recommender:
    """The recommender of a bundle, ready to recommend."""
    from .components import COMPONENTS
    from .data import Interactions

    path = Path(path)
    meta = read_bundle(path)
    items = _read_items(path / meta["items"]["path"])
    vectors = _load_arrays(path / meta["items"]["vectors"])["vectors"]
    if len(vectors) < len(items):
        raise ManifestError(f"{path}: the catalogue has {len(items)} items but {len(vectors)} item vectors")
    vectors = vectors[:len(items)]  # rows beyond: an interrupted add-items, whose catalogue was not written
    arrays = _load_arrays(path / meta["interactions"]["path"])
    users = json.loads((path / meta["interactions"]["users"]).read_text(encoding="utf-8"))
    train = Interactions(users, arrays["user"], arrays["item"], arrays["rating"], arrays["time"],
                         arrays["positive"].astype(bool))
    counts = _load_arrays(path / meta["counts"])["counts"]
    counts = np.concatenate([counts, np.zeros(len(items) - len(counts))])
    comps = {}
    for name, spec in meta["components"].items():
        kind = spec["kind"]
        if kind == "tower":
            from .tower import TextTower

            cls = TextTower
        elif kind in COMPONENTS:
            cls = COMPONENTS[kind]
        else:
            raise ManifestError(f"{path}: component '{name}' has an unknown kind '{kind}'")
        comps[name] = cls.load(spec["config"], _load_arrays(path / "components" / spec["path"]))
    serving = meta.get("serving", {})
    return Recommender(items, vectors, comps, Hybrid(**meta["hybrid"]), counts, train,
                       Encoder(path / meta["encoder"]["path"]), exact_limit=serving.get("exact_limit", 50_000),
                       index_settings={k: v for k, v in (("probe", serving.get("probe", 64)),
                                                         ("lists", serving.get("lists"))) if v is not None},
                       seed=meta.get("recipe", {}).get("seed", 0), trained_on=meta["items"]["trained_on"])


def add_items(path: str | Path, items_file: str | Path, columns: dict[str, str] | None = None,
              recommender: Recommender | None = None) -> int:
    """Add the items of ``items_file`` to the bundle's catalogue (embedded now; no retraining).

    The vectors are written first, then the catalogue: an interruption between the two
    leaves extra vector rows, which loading ignores."""
    path = Path(path)
    meta = read_bundle(path)
    rec = recommender or load_recommender(path)
    new = read_items(items_file, columns, existing=rec.items.index)
    return save_added(path, meta, rec, new)


def save_added(path: Path, meta: dict, rec: Recommender, new: Items) -> int:
    """Add ``new`` to ``rec`` and persist the grown catalogue into the bundle at ``path``."""
    added = rec.add_items(new)
    if added:
        _save_arrays(path / meta["items"]["vectors"], {"vectors": rec.vectors})
        _write_items(path / meta["items"]["path"], rec.items)
    return added
