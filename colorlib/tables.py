"""Results as text: aligned metric tables and JSON-safe values (for the CLI and the chapters)."""

from __future__ import annotations

__all__ = ["format_table", "format_interval_table", "json_value"]


def format_table(rows: dict[str, dict]) -> str:
    """Rows of metrics as an aligned text table; ``None`` (not computed) shows as ``-``."""
    columns: list[str] = []
    for metrics in rows.values():
        for key, value in metrics.items():
            if key not in columns and (value is None or _is_number(value)):
                columns.append(key)
    width = max(len(name) for name in rows)
    widths = {column: max(10, len(column)) for column in columns}
    lines = [" ".join([" " * width] + [f"{c:>{w}}" for c, w in widths.items()])]
    for name, metrics in rows.items():
        cells = [
            f"{float(metrics[c]):>{w}.4g}" if _is_number(metrics.get(c)) else f"{'-':>{w}}"
            for c, w in widths.items()
        ]
        lines.append(" ".join([f"{name:<{width}}", *cells]))
    return "\n".join(lines)


def format_interval_table(rows: dict[str, dict], columns: list[str] | None = None) -> str:
    """Rows of :class:`~colorlib.evaluation.stats.Interval` s (anything with ``value``, ``low``
    and ``high``) as ``value [low, high]`` cells, 3 significant digits; missing cells show ``-``.

    Args:
        rows: ``{row name: {column: Interval}}``, e.g. ``comparison.interval_table(...)``.
        columns: the columns, in order (default: every column, in first-seen order).
    """
    if columns is None:
        columns = list(dict.fromkeys(c for cells in rows.values() for c in cells))

    def cell(interval) -> str:
        if interval is None:
            return "-"
        return f"{interval.value:.3g} [{interval.low:.3g}, {interval.high:.3g}]"

    text = {name: [cell(cells.get(c)) for c in columns] for name, cells in rows.items()}
    widths = [max(len(c), *(len(t[i]) for t in text.values())) for i, c in enumerate(columns)]
    width = max(len(name) for name in rows)
    lines = ["  ".join([" " * width] + [f"{c:>{w}}" for c, w in zip(columns, widths, strict=True)])]
    for name, cells in text.items():
        lines.append(
            "  ".join(
                [f"{name:<{width}}"] + [f"{t:>{w}}" for t, w in zip(cells, widths, strict=True)]
            )
        )
    return "\n".join(lines)


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, (str, bool))


def json_value(value):
    """``json.dumps``'s ``default=``: numpy and torch scalars as Python numbers."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
