#!/usr/bin/env python3
"""Write (or check) each chapter's Colab/Kaggle launch cells from the one repository URL.

The URL is ``[project.urls] Repository`` in pyproject.toml and the branch is ``repository.branch``
in ``_config.yml``: change them there, then run ``python .ci/badges.py`` from the checkout. It
rewrites, in every ``book/NN_*.ipynb``:

* the ``launch-badges`` markdown cell (cell 2): the two badge lines, pointing at this very
  notebook; any text after them is kept;
* the ``url = "git+..."`` line of the ``colab-setup`` code cell.

``--check`` writes nothing and exits 1 naming the notebooks that are out of date
(``tests/test_book_structure.py`` runs it). Standard library only, so it runs before set-up.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
BADGES = {"Colab": "images/colab-badge.svg", "Kaggle": "images/kaggle-badge.svg"}
SETUP_URL = re.compile(r'^(\s*url = )"git\+[^"]*"', re.M)


def repository() -> tuple[str, str]:
    """``(url, branch)``: pyproject's Repository URL and ``_config.yml``'s branch."""
    with open(REPO / "pyproject.toml", "rb") as f:
        url = tomllib.load(f)["project"]["urls"]["Repository"].rstrip("/")
    found = re.search(r"^repository:\s*\n(?:\s+.*\n)*?\s+branch:\s*(\S+)", _config(), re.M)
    return url, found.group(1) if found else "main"


def _config() -> str:
    return (REPO / "_config.yml").read_text(encoding="utf-8")


def badge_lines(url: str, branch: str, relpath: str) -> list[str]:
    """The two badge lines of the notebook at ``relpath`` (relative to the checkout)."""
    owner_name = url.removeprefix("https://github.com/")
    targets = {
        "Colab": f"https://colab.research.google.com/github/{owner_name}/blob/{branch}/{relpath}",
        "Kaggle": f"https://kaggle.com/kernels/welcome?src={url}/blob/{branch}/{relpath}",
    }
    return [f"[![Open in {name}]({BADGES[name]})]({targets[name]})" for name in BADGES]


def _source(cell: dict) -> str:
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def _set_source(cell: dict, text: str) -> None:
    lines = text.splitlines(keepends=True)
    cell["source"] = lines


def _tagged(nb: dict, tag: str) -> list[dict]:
    return [cell for cell in nb["cells"] if tag in cell.get("metadata", {}).get("tags", [])]


def render(text: str, relpath: str, url: str, branch: str) -> str:
    """The notebook ``text`` (at ``relpath`` in the checkout) with its launch cells rewritten."""
    nb = json.loads(text)
    for cell in _tagged(nb, "launch-badges"):
        kept = [
            line
            for line in _source(cell).splitlines()
            if not line.startswith(("[![Open in Colab]", "[![Open in Kaggle]"))
        ]
        _set_source(cell, "\n".join([*badge_lines(url, branch, relpath), *kept]))
    for cell in _tagged(nb, "colab-setup"):
        _set_source(cell, SETUP_URL.sub(rf'\1"git+{url}"', _source(cell)))
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    url, branch = repository()
    chapters = sorted((REPO / "book").glob("[0-9][0-9]_*.ipynb"))
    stale = []
    for path in chapters:
        text = path.read_text(encoding="utf-8")
        new = render(text, path.relative_to(REPO).as_posix(), url, branch)
        if new == text:
            continue
        if args.check:
            stale.append(path.name)
        else:
            path.write_text(new, encoding="utf-8")
            print(f"updated {path.relative_to(REPO)}")
    if stale:
        print(f"launch cells out of date in {stale}: run python .ci/badges.py", file=sys.stderr)
        return 1
    print(f"{len(chapters)} chapters point at {url} ({branch})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
