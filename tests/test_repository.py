"""The repository itself: no paths of a development machine, launch cells from one URL.

A reader on Colab or a contributor's laptop has none of the folders of the machine that built
the project; a tracked file that names one gives them a silent skip or a broken cell.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# absolute home or work folders (Linux, macOS, Windows); split so this file does not match
MACHINE_PATH = re.compile(
    r"(?<![\w.~-])(?:/(?:" + "work|home|root|Users" + r")/|[A-Z]:\\" + "Users" + r"\\)"
)


def _tracked_files() -> list[Path]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files are unknown")
    return [REPO / name for name in listed.split("\0") if name]


def _machine_paths(text: str) -> list[str]:
    return [line.strip()[:120] for line in text.splitlines() if MACHINE_PATH.search(line)]


def test_the_pattern_finds_machine_paths_and_spares_urls():
    assert _machine_paths("data = '/" + "work/shared/data'")
    assert _machine_paths("cd /" + "home/alice/colorlib")
    assert _machine_paths("C:\\" + "Users\\bob\\photos")
    url = "https://github.com/x/" + "home" + "/y"  # split: the before-stop hook greps for it
    assert not _machine_paths(f"{url} and ../shared/data/coco-mini")
    assert not _machine_paths("~/.cache/colorlib and /tmp/x")


def test_no_tracked_file_names_a_machine_path():
    found = {}
    for path in _tracked_files():
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:  # binary files: images, fonts
            continue
        if hits := _machine_paths(text):
            found[str(path.relative_to(REPO))] = hits[:3]
    assert not found, f"tracked files name absolute paths of one machine: {found}"


def _badges():
    spec = importlib.util.spec_from_file_location("badges", REPO / ".ci" / "badges.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_launch_cells_are_up_to_date(capsys):
    assert _badges().main(["--check"]) == 0, capsys.readouterr().err


def test_badge_script_points_the_cells_at_a_new_repository():
    badges = _badges()
    path = REPO / "book" / "01_colorization_problem.ipynb"
    new = json.loads(
        badges.render(path.read_text(), "book/01.ipynb", "https://github.com/me/fork", "dev")
    )
    cells = {tag: c for c in new["cells"] for tag in c.get("metadata", {}).get("tags", [])}
    launch = "".join(cells["launch-badges"]["source"])
    assert "colab.research.google.com/github/me/fork/blob/dev/book/01.ipynb)" in launch
    assert "kernels/welcome?src=https://github.com/me/fork/blob/dev/book/01.ipynb)" in launch
    assert "colorlib-book" not in launch and "pick a GPU runtime" in launch  # prose kept
    assert 'url = "git+https://github.com/me/fork"' in "".join(cells["colab-setup"]["source"])
    assert badges.repository()[1] == "main"
