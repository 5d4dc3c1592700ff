"""The pages of the book, read from ``_toc.yml`` (shared by the structure and browser tests;
not a test module)."""

from __future__ import annotations

from pathlib import Path

import yaml

TOC = Path(__file__).resolve().parents[1] / "_toc.yml"


def toc_entries(toc: Path = TOC) -> list[str]:
    """The ``file`` entries of a jupyter-book ``_toc.yml``, root first, in reading order."""
    data = yaml.safe_load(toc.read_text())
    if not isinstance(data, dict) or "root" not in data:
        raise ValueError(f"{toc} has no `root:` entry: expected a jupyter-book 1.x _toc.yml")
    found = [str(data["root"])]

    def walk(node) -> None:
        if isinstance(node, dict):
            if "file" in node:
                found.append(str(node["file"]))
            for key in ("parts", "chapters", "sections"):
                walk(node.get(key, []))
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(data)
    return found
