"""Recorded benchmark results (``benchmarks/results/*.json``): find, load, tabulate, plot.

The scripts in ``benchmarks/`` write one JSON file per run; the Performance chapter reads
them. This module is what the chapter needs to do so:

* :func:`find_results` locates the results folder (given, ``../benchmarks/results`` from the
  book's folder, or the first ``benchmarks/results`` above the working directory) and
  :func:`load_results` reads every JSON file in it into ``{file stem: result}``;
* :func:`recorded` says whether the results a section needs are there, and which are not;
* :func:`train_rows`, :func:`amp_speedups` and :func:`step_table` turn the rows of
  ``train_bench.py`` and ``ddcolor_bench.py`` into tables for
  :func:`colorlib.tables.format_table`; :func:`throughput_panel` draws ``train_bench.py``'s
  images per second as grouped bars.

A reader who installed only the package has no results folder: :func:`find_results` gives
``None`` and :func:`load_results` an empty dict, after saying so.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = [
    "VARIANT_NAMES",
    "find_results",
    "load_results",
    "recorded",
    "train_rows",
    "throughput_panel",
    "amp_speedups",
    "step_table",
]

#: ``(gradient checkpointing, autocast)`` of a training-step row -> the label the tables use
VARIANT_NAMES: dict[tuple[bool, bool], str] = {
    (False, False): "float32",
    (True, False): "checkpointing",
    (False, True): "autocast",
    (True, True): "checkpointing + autocast",
}


def find_results(folder: str | Path | None = None) -> Path | None:
    """The benchmark results folder, or ``None`` when there is none.

    The first of these that is a directory: ``folder`` (when given), ``../benchmarks/results``
    (the book runs in ``book/``), then ``benchmarks/results`` in the working directory and in
    each of its parents, nearest first.

    Args:
        folder: a folder to prefer; ``None`` or ``""``: look in the usual places only.

    Returns:
        The folder as an absolute path, or ``None``.
    """
    here = Path.cwd().resolve()
    candidates = [Path(folder)] if folder else []
    candidates += [Path("../benchmarks/results")]
    candidates += [parent / "benchmarks" / "results" for parent in (here, *here.parents)]
    return next((path.resolve() for path in candidates if path.is_dir()), None)


def load_results(folder: str | Path | None) -> dict[str, dict]:
    """Every ``*.json`` file of ``folder``, as ``{file stem: parsed JSON}`` in name order.

    With no folder (``None``) or no JSON file in it, prints that the recorded sections will be
    skipped and returns ``{}``.

    Args:
        folder: a results folder, typically :func:`find_results`'s answer.

    Returns:
        ``{"train_cpu": {...}, ...}``.

    Raises:
        NotADirectoryError: ``folder`` is given but is not a directory.
        ValueError: a file is not valid JSON (the message names it).
    """
    if folder is not None and not Path(folder).is_dir():
        raise NotADirectoryError(f"no results folder at {folder}")
    results = {}
    for path in sorted(Path(folder).glob("*.json")) if folder is not None else []:
        try:
            results[path.stem] = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from error
    if not results:
        print(
            "No benchmark results found (benchmarks/results/*.json): the recorded sections are "
            "skipped. Clone the repository to read them; the live measurement still runs."
        )
    return results


def recorded(results: dict[str, dict], *names: str) -> bool:
    """True when all the named results exist; otherwise prints which files are missing.

    Nothing is printed when ``results`` is empty: :func:`load_results` has said so already.

    Args:
        results: :func:`load_results`'s answer.
        *names: the file stems a section needs, e.g. ``"train_cuda"``.

    Returns:
        Whether every one of ``names`` is in ``results``.
    """
    missing = [f"{name}.json" for name in names if name not in results]
    if missing and results:  # with no results at all, the loading has said so
        print(f"(not shown: {', '.join(missing)} missing from the benchmark results)")
    return not missing


def train_rows(result: dict) -> dict[str, dict[str, float]]:
    """One table row per model, size and precision of a ``train_bench.py`` result.

    Args:
        result: the parsed JSON, with ``rows`` of ``model``, ``size``, ``precision``,
            ``bare_ips``, ``fit_ips``, ``fit_cost_pct`` and ``fit_ms_per_step``.

    Returns:
        ``{"unet 256px fp32": {"bare img/s", "fit img/s", "fit cost %", "fit ms/step"}}``.
    """
    return {
        f"{row['model']} {row['size']}px {row['precision']}": {
            "bare img/s": row["bare_ips"],
            "fit img/s": row["fit_ips"],
            "fit cost %": row["fit_cost_pct"],
            "fit ms/step": row["fit_ms_per_step"],
        }
        for row in result["rows"]
    }


def throughput_panel(ax, result: dict, title: str) -> None:
    """Grouped bars on ``ax``: images/s of the bare loop and of ``fit()``, per model.

    One group per model (in the order of the rows), and in each group a bar per precision
    and loop: the bare loop plain, ``fit()`` hatched, one colour per precision. Each bar is
    labelled with its value.

    Args:
        ax: a matplotlib ``Axes``.
        result: a ``train_bench.py`` result (see :func:`train_rows`); every model must have a
            row for every precision.
        title: the panel's title.
    """
    rows = result["rows"]
    models = list(dict.fromkeys(row["model"] for row in rows))
    precisions = list(dict.fromkeys(row["precision"] for row in rows))
    bars = [(p, loop) for p in precisions for loop in ("bare", "fit")]
    x, width = np.arange(len(models)), 0.8 / len(bars)
    for i, (precision, loop) in enumerate(bars):
        ips = {r["model"]: r[f"{loop}_ips"] for r in rows if r["precision"] == precision}
        style = {"alpha": 0.55, "hatch": "//"} if loop == "fit" else {}
        label = f"{precision}: {'fit()' if loop == 'fit' else 'bare loop'}"
        offset, color = (i - (len(bars) - 1) / 2) * width, f"C{precisions.index(precision)}"
        drawn = ax.bar(
            x + offset, [ips[m] for m in models], width, label=label, color=color, **style
        )
        ax.bar_label(drawn, fmt="%.3g", fontsize=7)
    ax.set_xticks(x, models)
    ax.set_ylabel("training images per second")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)


def amp_speedups(rows: list[dict], suffix: str = "") -> dict[str, dict[str, float]]:
    """fp16 AMP images/s over float32 images/s, per model, for both loops.

    Args:
        rows: ``train_bench.py`` rows; each model needs one row whose ``precision`` contains
            ``"fp32"`` and one whose ``precision`` contains ``"fp16"``.
        suffix: appended to each model's name (to tell two runs apart in one table).

    Returns:
        ``{model + suffix: {"bare fp16/fp32": ratio, "fit fp16/fp32": ratio}}``.

    Raises:
        ValueError: a model lacks an fp32 or an fp16 row.
    """
    table = {}
    for model in dict.fromkeys(row["model"] for row in rows):
        found = {
            p: [r for r in rows if r["model"] == model and p in r["precision"]]
            for p in ("fp32", "fp16")
        }
        lacking = [p for p, matches in found.items() if not matches]
        if lacking:
            raise ValueError(f"{model} has no {' and no '.join(lacking)} row")
        fp32, fp16 = found["fp32"][0], found["fp16"][0]
        table[model + suffix] = {
            "bare fp16/fp32": fp16["bare_ips"] / fp32["bare_ips"],
            "fit fp16/fp32": fp16["fit_ips"] / fp32["fit_ips"],
        }
    return table


def step_table(rows: dict[str, dict], batch_size: int) -> dict[str, dict[str, float]]:
    """Time, memory and their ratios to the plain float32 step, per variant.

    Args:
        rows: ``{label: row}`` of ``ddcolor_bench.py`` training rows (``s_per_step``,
            ``peak_mib``, ``base_mib``), labelled by :data:`VARIANT_NAMES`; needs
            ``"float32"``.
        batch_size: images per step, for the images per second.

    Returns:
        ``{label: {"s/step", "img/s", "peak MiB", "x memory", "x time", "base MiB"}}``.
    """
    plain = rows["float32"]
    return {
        label: {
            "s/step": row["s_per_step"],
            "img/s": batch_size / row["s_per_step"],
            "peak MiB": row["peak_mib"],
            "x memory": row["peak_mib"] / plain["peak_mib"],
            "x time": row["s_per_step"] / plain["s_per_step"],
            "base MiB": row["base_mib"],
        }
        for label, row in rows.items()
    }
