"""A small catalogue and ratings written by us (no external data), in the MovieLens layout
of the recommendation recipe: ``items.csv`` (item_id,title,year,genres,text) and
``interactions.csv`` (user_id,item_id,rating,timestamp).

Users have one or two favourite genres and like (4–5 stars) films of them, rate others low,
and watch the sequel of a film they liked soon after it; so collaborative and text signals
both exist, and the last liked film of many users is a sequel the text can find."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

GENRES = ["Comedy", "Drama", "Thriller", "Animation", "Documentary", "Sci-Fi", "Romance", "Western"]
WORDS = ["Silver", "Harbor", "Quiet", "Storm", "Garden", "Midnight", "River", "Crown", "Paper", "Orbit", "Desert",
         "Lantern", "Echo", "Winter", "Copper", "Falcon", "Meadow", "Signal", "Canyon", "Velvet"]


def catalogue(n_items: int = 80, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n_items):
        genres = list(rng.choice(GENRES, size=int(rng.integers(1, 3)), replace=False))
        a, b = rng.choice(WORDS, size=2, replace=False)
        year = int(rng.integers(1990, 2018))
        sequel = i % 5 == 4  # every fifth film continues the one before it
        title = items[-1]["title"].split(" (")[0] + " Part II" if sequel else f"The {a} {b}"
        if sequel:
            genres, year = items[-1]["genres"].split("|"), items[-1]["year"] + 2
        items.append({"item_id": str(100 + i), "title": title + f" ({year})", "year": year,
                      "genres": "|".join(genres)})
    for it in items:
        it["text"] = f"{it['title']}. Genres: {', '.join(it['genres'].split('|'))}."
    return items


def write_sample(folder: Path, n_items: int = 80, n_users: int = 60, per_user: int = 18, seed: int = 0) -> Path:
    """Write ``items.csv`` and ``interactions.csv`` into ``folder``; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    items = catalogue(n_items, seed)
    by_genre = {g: [k for k, it in enumerate(items) if g in it["genres"].split("|")] for g in GENRES}
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.6
    rows = []
    for u in range(n_users):
        likes = set(rng.choice(GENRES, size=int(rng.integers(1, 3)), replace=False))
        weight = popularity.copy()
        for g in likes:
            weight[by_genre[g]] *= 6.0
        seen, t = set(), 1_500_000_000 + int(rng.integers(0, 50_000_000))
        while len(seen) < per_user:
            k = int(rng.choice(n_items, p=weight / weight.sum()))
            if k in seen:
                continue
            chain = [k] + ([k + 1] if k % 5 == 3 and k + 1 < n_items else [])  # a liked film's sequel follows
            for j in chain:
                if j in seen:
                    continue
                seen.add(j)
                liked = bool(likes & set(items[j]["genres"].split("|")))
                rating = float(rng.choice([4.0, 4.5, 5.0])) if liked else float(rng.choice([1.5, 2.0, 3.0]))
                t += int(rng.integers(600, 200_000))
                rows.append((str(u + 1), items[j]["item_id"], rating, t))
    with open(folder / "items.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["item_id", "title", "year", "genres", "text"])
        w.writeheader()
        w.writerows(items)
    with open(folder / "interactions.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "item_id", "rating", "timestamp"])
        w.writerows(rows)
    return folder
