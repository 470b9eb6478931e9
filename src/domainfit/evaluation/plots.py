"""Report plots, drawn with matplotlib's Agg renderer into PNG files.

Figures are built with :class:`matplotlib.figure.Figure` directly rather than through
``pyplot``: that renders with Agg without touching the process-wide backend (a notebook
or GUI keeps its own) and without pyplot's global figure list, so it is safe in servers
and threads. matplotlib is imported only when a plot is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..core.io import atomic_file

__all__ = ["plot_confusion_matrix", "plot_confused_pairs", "plot_reliability", "plot_residuals", "plot_shares",
           "plot_histograms", "plot_learning_curves", "learning_curves_png"]

_DPI = 110
_MAX_TICK_CHARS = 40
_MAX_PAIR_CHARS = 64


def plot_confusion_matrix(
    path: Path, y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]
) -> Path:
    """Draw the row-normalised confusion matrix (each row: where that true label went).

    Readable up to about 30 labels; for more, use :func:`plot_confused_pairs`.

    Args:
        path: PNG file to write.
        y_true: gold labels, shape (n,).
        y_pred: predicted labels, shape (n,).
        labels: row and column order; must include every label in ``y_true``/``y_pred``.

    Returns:
        ``path``.

    Example:
        >>> plot_confusion_matrix(Path("cm.png"), gold, pred, labels)  # doctest: +SKIP
    """
    from sklearn.metrics import confusion_matrix

    labels = [str(lab) for lab in labels]
    counts = confusion_matrix([str(t) for t in y_true], [str(p) for p in y_pred], labels=labels)
    row_sums = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, row_sums, out=np.zeros(counts.shape), where=row_sums > 0)
    k = len(labels)
    size = max(5.0, 0.32 * k + 3.0)
    fig = _figure(size + 1.0, size)
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true label's examples")
    font = 9 if k <= 15 else 7
    names = [_shorten(lab, _MAX_TICK_CHARS) for lab in labels]
    ax.set_xticks(range(k), names, rotation=90, fontsize=font)
    ax.set_yticks(range(k), names, fontsize=font)
    ax.set_xlabel("Predicted label")
    ax.set_ylabel("True label")
    ax.set_title("Confusion matrix (rows normalised)")
    if k <= 12:  # beyond that the numbers overlap; the colours still read
        for (i, j), value in np.ndenumerate(share):
            if counts[i, j]:
                colour = "white" if value > 0.5 else "black"
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=font,
                        color=colour)
    return _save(fig, path)


def plot_confused_pairs(path: Path, pairs: Sequence[tuple[str, str, int]]) -> Path:
    """Draw a horizontal bar chart of the most frequent (true → predicted) mistakes.

    Args:
        path: PNG file to write.
        pairs: ``(true, pred, count)`` tuples, most frequent first, as returned by
            :func:`~domainfit.evaluation.analysis.top_confused_pairs`.

    Returns:
        ``path``.

    Example:
        >>> plot_confused_pairs(Path("pairs.png"), [("a", "b", 3)])  # doctest: +SKIP
    """
    fig = _figure(8.0, max(2.5, 0.32 * len(pairs) + 1.5))
    ax = fig.add_subplot()
    ax.set_title(f"Top {len(pairs)} confused pairs (true → predicted)")
    if not pairs:
        ax.text(0.5, 0.5, "No mistakes", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return _save(fig, path)
    names = [_shorten(f"{t} → {p}", _MAX_PAIR_CHARS) for t, p, _ in pairs]
    counts = [c for _, _, c in pairs]
    bars = ax.barh(range(len(pairs)), counts, color="tab:red", alpha=0.8)
    ax.bar_label(bars, padding=2, fontsize=8)
    ax.set_yticks(range(len(pairs)), names, fontsize=8)
    ax.invert_yaxis()  # most frequent on top
    ax.set_xlabel("Number of test examples")
    ax.margins(x=0.1)
    return _save(fig, path)


def plot_reliability(path: Path, bins: Sequence[dict], ece: float) -> Path:
    """Draw a reliability diagram: accuracy per confidence bin against the diagonal.

    Bars below the diagonal mean the model is over-confident in that range.

    Args:
        path: PNG file to write.
        bins: per-bin dicts as returned by
            :func:`~domainfit.evaluation.calibration.reliability_bins`.
        ece: expected calibration error, shown on the plot.

    Returns:
        ``path``.

    Example:
        >>> plot_reliability(Path("rel.png"), bins, ece=0.1)  # doctest: +SKIP
    """
    fig = _figure(5.5, 5.0)
    ax = fig.add_subplot()
    lowers = [b["lower"] for b in bins]
    widths = [b["upper"] - b["lower"] for b in bins]
    heights = [b["accuracy"] or 0.0 for b in bins]
    bars = ax.bar(lowers, heights, width=widths, align="edge", edgecolor="black",
                  color="tab:blue", alpha=0.8, label="accuracy in bin")
    if len(bins) <= 20:
        ax.bar_label(bars, labels=[str(b["count"]) if b["count"] else "" for b in bins],
                     fontsize=7, padding=1)
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("Confidence (maximum probability)")
    ax.set_ylabel("Accuracy")
    ax.set_title("Reliability diagram (numbers: examples per bin)")
    ax.text(0.04, 0.93, f"ECE = {ece:.3f}", transform=ax.transAxes, fontsize=11,
            bbox={"facecolor": "white", "edgecolor": "gray"})
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_residuals(path: Path, y_true: Sequence[float], y_pred: Sequence[float]) -> Path:
    """Draw predicted against true values, with the diagonal of perfect predictions.

    Args:
        path: PNG file to write.
        y_true: gold values, shape (n,).
        y_pred: predicted values, shape (n,).

    Returns:
        ``path``.

    Example:
        >>> plot_residuals(Path("res.png"), [1.0, 2.0], [1.1, 1.8])  # doctest: +SKIP
    """
    gold = np.asarray(y_true, dtype=float)
    pred = np.asarray(y_pred, dtype=float)
    fig = _figure(5.5, 5.0)
    ax = fig.add_subplot()
    # Fade points as n grows so dense regions still show as darker.
    alpha = float(np.clip(300 / max(len(gold), 1), 0.1, 0.8))
    ax.scatter(gold, pred, s=10, alpha=alpha, rasterized=True)
    low, high = float(min(gold.min(), pred.min())), float(max(gold.max(), pred.max()))
    pad = 0.05 * (high - low or 1.0)
    ax.plot([low - pad, high + pad], [low - pad, high + pad], "--", color="gray",
            label="perfect prediction")
    ax.set_xlim(low - pad, high + pad)
    ax.set_ylim(low - pad, high + pad)
    ax.set_xlabel("True value")
    ax.set_ylabel("Predicted value")
    ax.set_title("Predicted vs true")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def plot_shares(path: Path, rows: Sequence[tuple[str, float, float]], title: str,
                names: tuple[str, str] = ("reference", "current")) -> Path:
    """Side-by-side bars of two shares per category (e.g. the predicted-label mix of a
    reference and a current set), one row per category, in the order given."""
    fig = _figure(7, 0.8 + 0.32 * max(len(rows), 1))
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    ax.barh(y - 0.2, [r[1] for r in rows], height=0.4, label=names[0], color="#8da0cb")
    ax.barh(y + 0.2, [r[2] for r in rows], height=0.4, label=names[1], color="#fc8d62")
    ax.set_yticks(y, [_shorten(r[0], _MAX_TICK_CHARS) for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("share")
    ax.set_title(title)
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_histograms(path: Path, reference: Sequence[float], current: Sequence[float], title: str, xlabel: str,
                    names: tuple[str, str] = ("reference", "current"), bins: int = 30) -> Path:
    """Two overlaid density histograms on shared bins."""
    ref, cur = np.asarray(reference, dtype=float), np.asarray(current, dtype=float)
    both = np.concatenate([ref, cur]) if len(ref) + len(cur) else np.zeros(1)
    edges = np.histogram_bin_edges(both, bins=bins)
    fig = _figure(6, 3.2)
    ax = fig.add_subplot()
    ax.hist(ref, bins=edges, density=True, alpha=0.55, label=names[0], color="#8da0cb")
    ax.hist(cur, bins=edges, density=True, alpha=0.55, label=names[1], color="#fc8d62")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


Curves = Sequence[tuple[str, Sequence[tuple[int, float]], Sequence[tuple[int, float]], "str | None"]]
"""Per run: its name, its training loss and its validation metric as ``(step, value)``, and that metric's name."""


def _learning_curves(runs: Curves):
    """Training loss (left) and validation metric (right) against the optimizer step, one
    colour per run in both panels; a panel no run has points for is left out."""
    from matplotlib.ticker import MaxNLocator

    panels = [(i, title) for i, title in ((1, "Training loss"), (2, "Validation")) if any(r[i] for r in runs)]
    fig = _figure(5.5 * max(len(panels), 1), 3.8)
    axes = [fig.add_subplot(1, max(len(panels), 1), n + 1) for n in range(len(panels))]
    colours = [f"C{i % 10}" for i in range(len(runs))]
    for ax, (i, title) in zip(axes, panels):
        metrics = sorted({r[3] for r in runs if r[i] and r[3]})
        for (name, train, evals, metric), colour in zip(runs, colours):
            points = train if i == 1 else evals
            if not points:
                continue
            label = _shorten(name, _MAX_TICK_CHARS)
            if i == 2 and len(metrics) > 1:  # runs of different tasks validate on different metrics
                label += f" ({metric})"
            ax.plot([s for s, _ in points], [v for _, v in points], color=colour, label=label,
                    marker="o" if len(points) <= 30 else None, markersize=3, linewidth=1.4)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.set_ylabel("loss" if i == 1 else ", ".join(metrics) or "metric")
        ax.set_title(title if i == 1 else f"Validation {' / '.join(metrics)}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def plot_learning_curves(path: Path, runs: Curves) -> Path:
    """Overlay the learning curves of several runs (see :data:`Curves`) in one PNG.

    Example:
        >>> plot_learning_curves(Path("curves.png"), [("a", [(10, 0.9), (20, 0.5)], [(20, 0.8)], "accuracy")])  # doctest: +SKIP
    """
    return _save(_learning_curves(runs), path)


def learning_curves_png(runs: Curves) -> bytes:
    """:func:`plot_learning_curves` as PNG bytes (to inline in an HTML page)."""
    import io

    buffer = io.BytesIO()
    _learning_curves(runs).savefig(buffer, format="png")
    return buffer.getvalue()


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=_DPI, layout="constrained")


def _save(fig, path: Path) -> Path:
    path = Path(path)
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
