"""The improvement loop on the command line: ``drift``, ``audit``, ``select``,
``import-labels``, ``retrain``, ``gate`` and ``improve``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .output import escape, print_json, quiet_libraries, say

__all__ = ["app"]

app = typer.Typer()


@app.command(epilog="Examples: domainfit drift my-model --reference validation.csv --current this-week.csv\n\n"
             "domainfit drift my-model --db sqlite:///feedback.db --since 7d --json")
def drift(
    model_dir: Path = typer.Argument(..., help="The model folder whose inputs are checked."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="Held-out texts like those the model was "
                                             "built on (e.g. its validation file; default: the validation texts "
                                             "stored in the model)."),
    current: Optional[Path] = typer.Option(None, "--current", help="The texts to check, as a file."),
    db: Optional[str] = typer.Option(None, "--db", help="Or the prediction log of domainfit serve --log-predictions "
                                     "(a SQLAlchemy URL)."),
    since: Optional[str] = typer.Option(None, "--since", help="With --db: predictions from this date "
                                        "(2026-11-30, 2026-11-30T08:00) or span back from now (7d, 12h)."),
    until: Optional[str] = typer.Option(None, "--until", help="With --db: predictions before this date."),
    served_name: Optional[str] = typer.Option(None, "--served-name", help="With --db: the model's name on the "
                                              "server (default: the folder's name)."),
    text_column: str = typer.Option("text", "--text-column", help="The text column of the files."),
    output: Path = typer.Option(Path("drift-report"), "--output", "-o", help="Folder for report.md, drift.json "
                                "and the plots."),
    alpha: float = typer.Option(0.05, "--alpha", help="False-alarm rate over all checks together."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Score below which a text counts as "
                                              "low-confidence (e.g. an out-of-scope threshold); default the "
                                              "reference's 5th percentile."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Compare the texts a model sees now with those it was built on: text vectors (MMD
    permutation test), predicted-label mix (PSI, chi-square), scores and low-confidence rate,
    text length and writing system. Exit code 1 when drift is found, so that cron or CI can
    alert; 0 when not."""
    from ..improve import run_drift

    quiet_libraries()
    result = run_drift(model_dir, reference, current=current, db=db, served_name=served_name, since=since,
                       until=until, text_column=text_column, output=output, alpha=alpha, threshold=threshold)
    if as_json:
        print_json(result.to_dict())
    else:
        say(("[red]Drift found[/]" if result.drift else "[green]No drift found[/]")
            + f": {result.current['n']} current against {result.reference['n']} reference texts")
        for s in result.signals:
            mark = "[red]drift[/]" if s.drift else "ok"
            say(f"  {s.name:<15} {mark:<5} p={s.p_value:.2g}  {escape(s.summary)}")
        for note in result.notes:
            say(f"  note: {escape(note)}")
        say(f"Report: {escape(str(output / 'report.md'))}")
    if result.drift:
        raise typer.Exit(1)


@app.command(epilog="Examples: domainfit gate new-model --champion old-model --data golden.csv\n\n"
             "domainfit gate new-model --champion models/intents --data golden.csv --promote models/intents")
def gate(
    candidate: Path = typer.Argument(..., help="The candidate model folder."),
    champion: str = typer.Option(..., "--champion", help="The model it must beat: a folder, or REGISTRY/NAME (its "
                                 "production version)."),
    data: Path = typer.Option(..., "--data", help="Frozen labelled data both are scored on (text,label)."),
    text_column: str = typer.Option("text", "--text-column"),
    label_column: str = typer.Option("label", "--label-column"),
    slice_column: Optional[str] = typer.Option(None, "--slice-column", help="Slices that must not regress (default: "
                                               "each true label)."),
    min_delta: float = typer.Option(0.0, "--min-delta", help="The accuracy gain the candidate must show."),
    max_loss: float = typer.Option(0.01, "--max-loss", help="The loss the 95% interval of the difference may "
                                   "still allow."),
    slice_tolerance: float = typer.Option(0.05, "--slice-tolerance", help="Accuracy a slice may lose."),
    ece_tolerance: float = typer.Option(0.02, "--ece-tolerance", help="Calibration error the candidate may add."),
    promote: Optional[str] = typer.Option(None, "--promote", help="On a pass, add the candidate to REGISTRY/NAME "
                                          "and promote it (recorded in the registry's history)."),
    output: Path = typer.Option(Path("gate-report"), "--output", "-o", help="Folder for gate.md and gate.json."),
    as_json: bool = typer.Option(False, "--json", help="Print the verdict as JSON (key passed)."),
) -> None:
    """Decide whether a candidate may replace the champion: paired bootstrap interval and
    McNemar's test of the accuracy difference, per-slice non-regression, calibration. Exit
    code 0 on a pass, 1 on a refusal; with --promote, promotes only on a pass."""
    from ..improve.gate import gate as run_gate, promote_on_pass, write_gate_report

    quiet_libraries()
    result = run_gate(candidate, champion, data, text_column=text_column, label_column=label_column,
                      slice_column=slice_column, min_delta=min_delta, max_loss=max_loss,
                      slice_tolerance=slice_tolerance, ece_tolerance=ece_tolerance)
    write_gate_report(result, output)
    version = promote_on_pass(result, candidate, promote) if promote else None
    if as_json:
        print_json({**result.to_dict(), "promoted_version": version})
    else:
        say(("[green]Passed[/]" if result.passed else "[red]Refused[/]") + f": {escape(result.reasons[0])}")
        for reason in result.reasons[1:]:
            say(f"  {escape(reason)}")
        if version is not None:
            say(f"[green]Promoted[/] {escape(str(promote))} version {version}")
        say(f"Report: {escape(str(output / 'gate.md'))}")
    if not result.passed:
        raise typer.Exit(1)


@app.command(epilog="Example: domainfit audit --data train.csv --output audit/ --folds 5")
def audit(
    data: Path = typer.Option(..., "--data", help="The labelled file to audit (text,label)."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for label_issues.csv, near_duplicates.csv and "
                                "audit.json."),
    model: str = typer.Option("default", "--model", help="The encoder: default, a local folder or hub id, or a "
                              "domainfit model folder (fast mode reads its text vectors)."),
    folds: int = typer.Option(5, "--folds", help="Cross-validation folds for the out-of-fold probabilities."),
    mode: str = typer.Option("fast", "--mode", help="fast: frozen text vectors + a head per fold (minutes); "
                             "full: fine-tune the encoder per fold (folds × a training run)."),
    text_column: str = typer.Option("text", "--text-column"),
    label_column: str = typer.Option("label", "--label-column"),
    duplicate_threshold: float = typer.Option(0.95, "--duplicate-threshold", help="Cosine similarity from which two "
                                              "texts count as near-duplicates."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Find labels that are probably wrong (confident learning on out-of-fold probabilities)
    and near-duplicate texts with different labels; the most suspicious rows come first,
    each with the label the data suggests."""
    from ..improve.audit import audit as run_audit

    quiet_libraries()
    result = run_audit(data, output, model=model, folds=folds, mode=mode, text_column=text_column,
                       label_column=label_column, duplicate_threshold=duplicate_threshold)
    summary = {"rows": result.rows, "flagged": len(result.flagged), "near_duplicate_pairs": len(result.duplicates),
               "out_of_fold_accuracy": result.out_of_fold_accuracy, "output": str(output)}
    if as_json:
        print_json(summary)
        return
    say(f"[green]Audited[/] {result.rows:,} rows ({mode}, out-of-fold accuracy {result.out_of_fold_accuracy:.3f}): "
        f"{len(result.flagged):,} labels look wrong ({len(result.flagged) / result.rows:.1%}), "
        f"{len(result.duplicates):,} near-duplicate pairs disagree. See {escape(str(output / 'label_issues.csv'))}")


@app.command(epilog="Example: domainfit select my-model --pool unlabelled.csv --budget 200 --exclude train.csv "
             "--output to_label.csv")
def select(
    model_dir: Path = typer.Argument(..., help="The model whose uncertainty guides the picks."),
    pool: Path = typer.Option(..., "--pool", help="Unlabelled texts to pick from (a text column)."),
    budget: int = typer.Option(..., "--budget", help="How many texts to pick."),
    output: Path = typer.Option(..., "--output", "-o", help="to_label.csv (or .json: Label Studio tasks)."),
    strategy: str = typer.Option("margin", "--strategy", help="margin (default: the best measured) | entropy "
                                "| diverse | hybrid."),
    exclude: Optional[Path] = typer.Option(None, "--exclude", help="Texts labelled already (never picked)."),
    text_column: str = typer.Option("text", "--text-column"),
    fmt: Optional[str] = typer.Option(None, "--format", help="csv or labelstudio (default: from the file name)."),
) -> None:
    """Pick the texts a person should label next (uncertain, diverse, or both), each with the
    model's current guess; repeats and already labelled texts are never picked."""
    from ..improve.select import select as run_select, write_picks

    quiet_libraries()
    selection, lines, texts = run_select(model_dir, pool, budget, strategy=strategy, exclude=exclude,
                                         text_column=text_column)
    write_picks(selection, lines, texts, output, fmt)
    say(f"[green]Picked[/] {len(selection.rows)} of {len(texts):,} texts ({strategy}) → {escape(str(output))}")


@app.command("import-labels", epilog="Example: domainfit import-labels export.json --output labelled.csv")
def import_labels(
    source: Path = typer.Argument(..., help="A Label Studio JSON export, or a CSV with text,label."),
    output: Path = typer.Option(..., "--output", "-o", help="The labelled CSV (text,label) for train or retrain."),
) -> None:
    """Turn labels done in Label Studio (JSON export) or a filled-in to_label.csv into the
    text,label CSV that train and retrain read (rows without a label are left out)."""
    import csv

    from ..core.io import atomic_file
    from ..improve.select import read_labelstudio

    if source.suffix == ".json":
        rows = read_labelstudio(source)
    else:
        from ..improve.audit import read_labelled

        _, texts, labels = read_labelled(source, min_labels=1)
        rows = [{"text": t, "label": lab} for t, lab in zip(texts, labels)]
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(output) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows([r["text"], r["label"]] for r in rows)
    say(f"[green]Wrote[/] {len(rows)} labelled rows to {escape(str(output))}")


@app.command(epilog="Example: domainfit retrain my-model --add feedback.csv --add relabelled.csv --output my-model-v2")
def retrain(
    model_dir: Path = typer.Argument(..., help="The model to start from (its weights and settings)."),
    add: list[Path] = typer.Option(..., "--add", help="New labelled rows (text,label; repeat for more files)."),
    output: Path = typer.Option(..., "--output", "-o", help="The new model folder."),
    replay: str = typer.Option("all", "--replay", help="The parent's own training rows to train on again: all, N "
                               "(a seeded sample) or 0."),
    original_data: Optional[Path] = typer.Option(None, "--original-data", help="The parent's training file, if it "
                                                 "moved since."),
    epochs: Optional[float] = typer.Option(None, "--epochs", help="Passes over the data (default: the parent's)."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the output folder."),
) -> None:
    """Warm-start a new model from a trained one and teach it new labelled rows (feedback,
    audit corrections, active-learning picks) together with a replay of its own data; a new
    row that repeats an old text replaces its label. The manifest records the parent and what
    was added."""
    from ..improve.retrain import retrain as run_retrain

    quiet_libraries()
    result = run_retrain(model_dir, add, output, replay=replay, epochs=epochs, seed=seed, overwrite=overwrite,
                         original_data=original_data)
    say(f"[green]Wrote[/] {escape(str(result.path))}")


@app.command(epilog="Example: domainfit improve recipes/improve.yaml   (e.g. nightly from cron)")
def improve(recipe: Path = typer.Argument(..., help="The loop's recipe (model, feedback, golden, ...)."),
            as_json: bool = typer.Option(False, "--json", help="Print the run's record as JSON.")) -> None:
    """One run of the improvement loop: export the corrections stored since the last run,
    audit the training data with them, retrain from the serving model, gate the candidate
    against it on the golden data, and promote it only on a pass. Resumes a run that was
    cut short; with no new corrections it does nothing and says so. Exit code 1 when the
    gate refuses the candidate."""
    from ..improve.loop import improve as run_improve

    quiet_libraries()
    run = run_improve(recipe)
    if as_json:
        print_json(run)
    if not run.get("nothing_new") and run["steps"]["promote"]["version"] is None:
        raise typer.Exit(1)
