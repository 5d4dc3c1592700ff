"""The book's structure, checked without executing anything (fast: JSON, YAML and TOML only).

Design: ``_toc.yml`` names the pages; every chapter notebook (``book/NN_*.ipynb``) follows the
house order of STYLE.md and the launch set-up written by the badge script:

* cell 1 is the title (``# Title``): jupyter-book takes the page title from the first heading;
* cell 2 is the ``launch-badges`` markdown cell: "Open in Colab" and "Open in Kaggle" links to
  *this* notebook at ``[project.urls] Repository`` of pyproject.toml, with local badge images
  (the book is built offline and its browser test requires every image to decode);
* a ``colab-setup`` code cell, before the ``parameters`` cell, installs colorlib from that same
  repository when it is missing; the ``parameters`` cell sets ``PROFILE = None``;
* the notebook imports colorlib, is stored without outputs or execution counts, ends with an
  ``## Exercises`` section, and defines no ``nn.Module`` and no optimiser (the library
  implements, the chapters explain).

The repository URL is read from pyproject.toml once and compared with ``_config.yml``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import pytest
import yaml
from booktoc import toc_entries

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"
SOURCE_SUFFIXES = (".ipynb", ".md", ".rst")
BADGE_IMAGES = {"colab": "images/colab-badge.svg", "kaggle": "images/kaggle-badge.svg"}
TITLE = re.compile(r"^# \S")
MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)")
MODULE_CLASS = re.compile(r"^\s*class\s+\w+\s*\(\s*(?:torch\.)?(?:nn\.)?Module\b", re.M)
OPTIMISER = re.compile(r"\btorch\.optim\.\w+\(|\boptim\.(?:Adam|AdamW|SGD|RMSprop)\w*\(")
IMPORTS_COLORLIB = re.compile(r"^\s*(?:import colorlib\b|from colorlib(?:\.[\w.]+)? import )", re.M)
# Toy optimisations that explain an idea, not a colorizer's training: chapter 3 fits a 1-D
# discriminator (a small nn.Sequential) and a constant ab by Adam. Counted, so a new one fails.
TOY_OPTIMISERS = {"03_cgan_loss.ipynb": 2}


def source_of(entry: str) -> Path | None:
    """The file a ``_toc.yml`` entry names (with or without its suffix), or None."""
    base = REPO / entry
    if base.suffix in SOURCE_SUFFIXES and base.is_file():
        return base
    found = [base.with_name(base.name + s) for s in SOURCE_SUFFIXES]
    return next((path for path in found if path.is_file()), None)


def repository_url() -> str:
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["urls"]["Repository"].rstrip("/")


def repository_branch() -> str:
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    return (config.get("repository") or {}).get("branch") or "main"


ENTRIES = toc_entries()
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))


def read(path: Path):
    return nbformat.read(path, as_version=4)


def tagged(nb, tag: str) -> list[int]:
    return [i for i, cell in enumerate(nb.cells) if tag in cell.metadata.get("tags", [])]


def code_of(nb) -> str:
    return "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")


def test_toc_has_the_chapters():
    assert len(ENTRIES) > len(CHAPTERS) >= 7, f"_toc.yml lists only {ENTRIES}"


@pytest.mark.parametrize("entry", ENTRIES)
def test_toc_page_exists(entry):
    assert source_of(entry) is not None, f"_toc.yml names {entry!r}, which has no source file"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_in_the_toc(path):
    listed = {source_of(entry) for entry in ENTRIES}
    assert path in listed, f"{path.relative_to(REPO)} is not in _toc.yml: the build skips it"


def test_repository_url_is_one_url():
    with open(REPO / "pyproject.toml", "rb") as f:
        urls = tomllib.load(f)["project"]["urls"]
    url = repository_url()
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url), url
    assert urls["Homepage"].rstrip("/") == url
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    assert config["repository"]["url"].rstrip("/") == url, "_config.yml names another repository"


@pytest.mark.parametrize("name", sorted(BADGE_IMAGES.values()))
def test_badge_image_is_a_local_svg(name):
    root = ET.parse(BOOK / name).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    # explicit sizes: an <img> of an SVG without them may have no natural size in a browser
    assert float(root.get("width")) > 0 and float(root.get("height")) > 0


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_is_a_valid_notebook(path):
    nb = read(path)
    nbformat.validate(nb)
    assert (nb.nbformat, nb.nbformat_minor) >= (4, 5), "cell ids need nbformat 4.5"
    ids = [cell.id for cell in nb.cells]
    assert len(ids) == len(set(ids)), f"duplicate cell ids in {path.name}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_title_heading_is_the_first_cell(path):
    first = read(path).cells[0]
    assert first.cell_type == "markdown" and TITLE.match(first.source), (
        f"{path.name} starts with {first.source[:60]!r}, not a `# Title` markdown cell"
    )


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_launch_badges_are_the_second_cell(path):
    nb = read(path)
    assert tagged(nb, "launch-badges") == [1], (
        f"{path.name}: the launch-badges cell should be cell 2 (run python .ci/badges.py)"
    )
    cell = nb.cells[1]
    assert cell.cell_type == "markdown"
    url, branch, relpath = repository_url(), repository_branch(), path.relative_to(REPO)
    owner_name = url.removeprefix("https://github.com/")
    colab = f"https://colab.research.google.com/github/{owner_name}/blob/{branch}/{relpath}"
    kaggle = f"https://kaggle.com/kernels/welcome?src={url}/blob/{branch}/{relpath}"
    assert f"({colab})" in cell.source, f"no Colab link to {colab}"
    assert f"({kaggle})" in cell.source, f"no Kaggle link to {kaggle}"
    images = MARKDOWN_IMAGE.findall(cell.source)
    assert sorted(images) == sorted(BADGE_IMAGES.values()), images
    for image in images:
        assert (path.parent / image).is_file(), f"badge image {image} is missing"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_colab_setup_comes_before_the_parameters(path):
    nb = read(path)
    setup, parameters = tagged(nb, "colab-setup"), tagged(nb, "parameters")
    assert len(setup) == 1, f"{path.name}: {len(setup)} colab-setup cells, expected 1"
    assert len(parameters) == 1, f"{path.name}: {len(parameters)} parameters cells, expected 1"
    assert setup[0] < parameters[0], "the set-up must run before the chapter's imports"
    source = nb.cells[setup[0]].source
    assert nb.cells[setup[0]].cell_type == "code"
    assert f'"git+{repository_url()}"' in source, "installs from another repository"
    assert 'find_spec("colorlib") is None' in source, "must do nothing where colorlib exists"
    assert '"pip", "install"' in source


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_parameters_cell_leaves_the_profile_to_the_machine(path):
    nb = read(path)
    (index,) = tagged(nb, "parameters")
    assert re.search(r"^PROFILE = None\b", nb.cells[index].source, re.M), (
        f"{path.name}: the parameters cell must set PROFILE = None"
    )


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_imports_colorlib(path):
    assert IMPORTS_COLORLIB.search(code_of(read(path))), f"{path.name} never imports colorlib"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_is_stored_without_outputs(path):
    for i, cell in enumerate(read(path).cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: cell {i} has stored outputs"
            assert cell.execution_count is None, f"{path.name}: cell {i} has an execution count"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_ends_with_exercises(path):
    nb = read(path)
    headings = [
        (i, line.strip())
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "markdown"
        for line in cell.source.splitlines()
        if re.match(r"#{1,2} ", line)
    ]
    assert headings, f"{path.name} has no headings"
    index, last = headings[-1]
    assert last == "## Exercises", f"{path.name}: the last section is {last!r}, not Exercises"
    assert index >= len(nb.cells) - 3, f"{path.name}: cells {index + 1}.. follow the Exercises"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_defines_no_model_and_no_optimiser(path):
    code = code_of(read(path))
    classes = MODULE_CLASS.findall(code)
    assert not classes, f"{path.name} defines an nn.Module: {classes} (it belongs in colorlib)"
    optimisers = OPTIMISER.findall(code)
    allowed = TOY_OPTIMISERS.get(path.name, 0)
    assert len(optimisers) <= allowed, (
        f"{path.name} builds optimisers {optimisers}: use colorlib.training.loop.build_optimizers"
    )
