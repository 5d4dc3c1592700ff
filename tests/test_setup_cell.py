"""The chapters' Colab/Kaggle set-up cell keeps the platform's torch (pip's own resolution).

The cell runs ``pip install "colorlib[widgets] @ git+<repository>"`` where colorlib is missing.
Here the same command, pointed at this checkout as a local git URL, is resolved by pip in a
dry run inside the test environment, which already has torch: pip must plan to install
colorlib and nothing of PyTorch. Needs git and the package index for the build backend.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
CHAPTER = REPO / "book" / "01_colorization_problem.ipynb"


def _setup_cell() -> str:
    nb = nbformat.read(CHAPTER, as_version=4)
    (cell,) = [c for c in nb.cells if "colab-setup" in c.metadata.get("tags", [])]
    return cell.source


def test_the_cell_installs_colorlib_with_widgets_from_the_repository():
    source = _setup_cell()
    assert re.search(r'url = "git\+https://github\.com/[\w.-]+/[\w.-]+"', source)
    assert 'f"colorlib[widgets] @ {url}"' in source and "torch" not in source.split("import")[-1]


@pytest.mark.slow
def test_pip_keeps_the_installed_torch(tmp_path):
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a git checkout for a git+file URL")
    report = tmp_path / "report.json"
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--quiet",
        "--report",
        str(report),
        f"colorlib[widgets] @ git+file://localhost{REPO}",  # pip 23 wants a host
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0 and "No matching distribution" in done.stderr:
        pytest.skip(f"no package index for the build backend: {done.stderr[-300:]}")
    assert done.returncode == 0, done.stderr[-2000:]
    planned = {
        item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]
    }
    assert "colorlib" in planned
    assert not planned & {"torch", "torchvision", "nvidia-cudnn-cu12", "triton"}, planned
