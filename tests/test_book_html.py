"""Browser check of the built book: every page of ``_toc.yml`` renders in headless Chromium.

Design: the HTML folder named by ``COLORLIB_BOOK_HTML`` (``jupyter-book build`` output, e.g.
``_build/smoke/_build/html``) is served over ``http://127.0.0.1`` from a thread, one headless
Chromium (``chromium_cdp``, DevTools over a pipe, standard library only) loads each page in
``_toc.yml`` order, and a single JavaScript probe returns what the checks need after the load
event and after every image has decoded: heading, figures, error and stream outputs, navigation.
Checks:

* the page answers 200 with a visible ``<h1>`` that ``document.title`` starts with, and its
  same-origin resources (styles, scripts, images, fonts) all load, and every image decodes;
* a notebook page (``.ipynb`` or MyST-NB text notebook) shows at least one figure in its cell
  outputs: every chapter notebook of this book draws; ``intro.md`` does not;
* no error output: no myst-nb ``.output.traceback`` block, no docutils ``.system-message`` or
  ``.problematic`` node, no ``Traceback (most recent call last)`` or ``SomethingError:`` line in
  any output, no uncaught JavaScript exception. A cell tagged ``raises-exception`` may show its
  deliberate error. stderr blocks (warnings, progress bars) are allowed and counted;
* the sidebar of the root page lists every ``_toc.yml`` page in order, and ``index.html``
  redirects to the root page.

A full-page PNG per page goes to ``COLORLIB_BOOK_SCREENSHOTS`` (default ``_build/screenshots``,
named ``NN_<path>.png`` in book order), with ``summary.json`` (figures, stderr counts per page).
Skips, with the reason, when ``COLORLIB_BOOK_HTML`` is unset or no Chromium is installed (but
fails when the book is named and Chromium is missing: a CI run must not pass without a browser).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import re
import threading
import time
from pathlib import Path

import pytest
from booktoc import toc_entries
from chromium_cdp import INSTALL_HINT, Chromium, find_chromium

REPO = Path(__file__).resolve().parents[1]
SOURCE_SUFFIXES = (".ipynb", ".md", ".rst")
# a traceback, or a line starting "ValueError: ..." / "Error: ..." in any cell output
ERROR_LINE = re.compile(
    r"^\s*(Traceback \(most recent call last\)|(?:[A-Za-z_][\w.]*)?(?:Error|Exception): )", re.M
)
WARNING_LINE = re.compile(r"\b\w*Warning\b")
# jupyter-book 1.x emits sphinx-thebe's inline `const THEBE_JS_URL = ...` twice on every page
KNOWN_JS_ERRORS = ("Identifier 'THEBE_JS_URL' has already been declared",)

PAGE_PROBE = """(async () => {
  await document.fonts.ready;
  await Promise.all([...document.images].map((img) => img.decode().catch(() => null)));
  if (window.MathJax?.startup?.promise) await window.MathJax.startup.promise;  // typeset done
  const local = (url) => !/^https?:/.test(url) || url.startsWith(location.origin);
  const article = document.querySelector("article.bd-article") || document.body;
  const h1 = article.querySelector("h1");
  const deliberate = (el) => !!el.closest(".tag_raises-exception");
  const nav = document.querySelector("nav.bd-docs-nav");
  return {
    url: location.href,
    status: performance.getEntriesByType("navigation")[0]?.responseStatus ?? null,
    title: document.title,
    heading: h1 ? h1.innerText.replace(/[#\\u00b6]\\s*$/, "").trim() : null,
    heading_visible: !!h1 && h1.getBoundingClientRect().height > 0,
    math: article.querySelectorAll(".math").length,
    mathjax: !!(window.MathJax && window.MathJax.version),
    math_untypeset: [...article.querySelectorAll(".math")]
      .filter((el) => !el.querySelector("mjx-container")).map((el) => el.innerText.slice(0, 80)),
    math_errors: [...article.querySelectorAll("mjx-merror")]
      .map((el) => el.getAttribute("data-mjx-error") || el.textContent.slice(0, 80)),
    figures: [...article.querySelectorAll(".cell_output img")].map((img) => ({
      src: img.getAttribute("src"), width: img.naturalWidth, height: img.naturalHeight})),
    broken_images: [...document.images]
      .filter((img) => local(img.src) && img.naturalWidth === 0).map((img) => img.src),
    failed_resources: performance.getEntriesByType("resource")
      .filter((r) => local(r.name) && r.responseStatus >= 400 && !r.name.endsWith("/favicon.ico"))
      .map((r) => `${r.responseStatus} ${r.name}`),
    error_blocks: [...article.querySelectorAll(
      ".output.traceback, .output.error, .system-message, .problematic")].map((el) => ({
      kind: el.className, text: el.innerText.slice(0, 400), deliberate: deliberate(el)})),
    outputs: [...article.querySelectorAll(".cell_output .output:not(.traceback)")].map((el) => ({
      stderr: el.classList.contains("stderr"), text: el.innerText, deliberate: deliberate(el)})),
    nav: nav && [...nav.querySelectorAll("a.reference")].map((a) => ({
      path: new URL(a.getAttribute("href"), location.href).pathname, text: a.innerText.trim()})),
  };
})()"""


def html_path(entry: str) -> str:
    """``book/intro`` or ``book/intro.md`` -> ``book/intro.html`` (relative to the HTML root)."""
    stem = entry[: -len(Path(entry).suffix)] if Path(entry).suffix in SOURCE_SUFFIXES else entry
    return stem + ".html"


def is_notebook(entry: str, repo: Path = REPO) -> bool:
    """True when the page's source is a notebook (``.ipynb`` or a MyST-NB text notebook)."""
    base = repo / entry
    sources = [base] if base.suffix in SOURCE_SUFFIXES else []
    sources += [base.with_name(base.name + suffix) for suffix in SOURCE_SUFFIXES]
    for source in sources:
        if source.is_file():
            head = source.read_text(errors="replace")[:3000]
            return source.suffix == ".ipynb" or (head.startswith("---") and "kernelspec" in head)
    raise FileNotFoundError(f"_toc.yml entry {entry!r} has no source file under {repo}")


ENTRIES = toc_entries()


@pytest.fixture(scope="module")
def book_html() -> Path:
    value = os.environ.get("COLORLIB_BOOK_HTML")
    if not value:
        pytest.skip(
            "COLORLIB_BOOK_HTML is unset: run `make html-smoke`, or build the book and "
            "set it to the build's _build/html folder"
        )
    root = Path(value).resolve()
    if not (root / "index.html").is_file():
        pytest.fail(f"COLORLIB_BOOK_HTML={value} has no index.html: expected jupyter-book output")
    return root


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def serve(folder: Path):
    """Serve ``folder`` on a free port of 127.0.0.1 from a daemon thread; yield its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def book_url(book_html: Path):
    with serve(book_html) as url:
        yield url


@pytest.fixture(scope="module")
def page():
    binary = find_chromium()
    if binary is None and os.environ.get("COLORLIB_BOOK_HTML"):  # asked for: do not pass silently
        pytest.fail(f"COLORLIB_BOOK_HTML is set but no Chromium was found: {INSTALL_HINT}")
    if binary is None:
        pytest.skip(f"no Chromium found: {INSTALL_HINT}")
    with Chromium(binary, width=1280, height=1000) as browser:
        yield browser.new_page()


@pytest.fixture(scope="module")
def screenshots():
    """The screenshot folder; ``summary.json`` is written there once every page is checked."""
    folder = Path(os.environ.get("COLORLIB_BOOK_SCREENSHOTS", REPO / "_build" / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    summary: dict[str, dict] = {}
    yield folder, summary
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # under xdist: one file per worker
    name = f"summary-{worker}.json" if worker else "summary.json"
    (folder / name).write_text(json.dumps(summary, indent=2) + "\n")


def output_problems(info: dict) -> tuple[list[str], dict]:
    """Error outputs found by the probe, and the counts of stderr blocks and warning lines."""
    problems = []
    for block in info["error_blocks"]:
        if not block["deliberate"]:
            problems.append(f"error block ({block['kind']}): {block['text']!r}")
    stderr = warnings = 0
    for output in info["outputs"]:
        stderr += output["stderr"]
        warnings += len(WARNING_LINE.findall(output["text"])) if output["stderr"] else 0
        match = ERROR_LINE.search(output["text"])
        if match and not output["deliberate"]:
            line = output["text"][match.start() :].strip().splitlines()[0]
            kind = "stderr" if output["stderr"] else "output"
            problems.append(f"{kind} shows an error: {line!r} (tag the cell raises-exception?)")
    return problems, {"stderr_blocks": stderr, "warning_lines": warnings}


def page_problems(info: dict, js_errors: list[str], notebook: bool) -> list[str]:
    """Everything wrong with one rendered page (empty when it is fine).

    Args:
        info: what ``PAGE_PROBE`` returned for the page.
        js_errors: uncaught JavaScript exceptions of the page load.
        notebook: whether the page comes from a notebook, which must show a decoded figure.
    """
    problems = [f"HTTP status {info['status']}"] if info["status"] not in (200, None) else []
    if not info["heading"] or not info["heading_visible"]:
        problems.append(f"no visible <h1> heading (title {info['title']!r})")
    elif not info["title"].startswith(info["heading"]):
        problems.append(f"title {info['title']!r} does not start with <h1> {info['heading']!r}")
    if notebook and not any(figure["width"] > 0 for figure in info["figures"]):
        problems.append("notebook page shows no figure (no decoded <img> in its cell outputs)")
    problems += [f"image does not decode: {src}" for src in info["broken_images"]]
    problems += [f"resource failed: {failed}" for failed in info["failed_resources"]]
    problems += output_problems(info)[0]
    if info["math"] and not info["mathjax"]:
        problems.append(f"{info['math']} formulas but MathJax did not load (book/_static/mathjax)")
    elif info.get("math_untypeset"):
        problems.append(f"formulas left as TeX: {info['math_untypeset'][:3]}")
    problems += [f"MathJax error: {error}" for error in info.get("math_errors", [])]
    known = [e for e in js_errors if any(k in e for k in KNOWN_JS_ERRORS)]
    problems += [f"JavaScript exception: {e.splitlines()[0]}" for e in js_errors if e not in known]
    return problems


@pytest.mark.parametrize("index, entry", list(enumerate(ENTRIES)), ids=ENTRIES)
def test_toc_page_renders_with_figures_and_no_errors(index, entry, book_url, page, screenshots):
    folder, summary = screenshots
    page.goto(book_url + html_path(entry))
    info = page.evaluate(PAGE_PROBE, await_promise=True)
    js_errors = page.js_exceptions()
    shot = folder / f"{index:02d}_{html_path(entry).removesuffix('.html').replace('/', '_')}.png"
    size = page.screenshot(shot)  # before the asserts: a failing page leaves its picture too
    problems = page_problems(info, js_errors, notebook=is_notebook(entry))
    summary[entry] = {
        "heading": info["heading"],
        "figures": len(info["figures"]),
        **output_problems(info)[1],
        "math_blocks": info["math"],
        "mathjax_loaded": info["mathjax"],
        "screenshot": shot.name,
        "screenshot_size": size,
        "problems": problems,
    }
    print(f"{entry}: {summary[entry]}")
    assert not problems, f"{html_path(entry)} ({shot}):\n  " + "\n  ".join(problems)


def test_navigation_lists_every_toc_page_in_order(book_url, page):
    page.goto(book_url + "index.html")
    root = "/" + html_path(ENTRIES[0])
    deadline = time.monotonic() + 10
    while page.evaluate("location.pathname") != root:  # index.html is a meta-refresh redirect
        assert time.monotonic() < deadline, f"index.html did not redirect to {root}"
        time.sleep(0.1)
    page.goto(book_url + html_path(ENTRIES[0]))  # the load event of the redirect target
    nav = page.evaluate(PAGE_PROBE, await_promise=True)["nav"]
    assert nav, "the page has no sidebar navigation (nav.bd-docs-nav)"
    expected = ["/" + html_path(entry) for entry in ENTRIES]
    listed = [link["path"] for link in nav]
    missing = [path for path in expected if path not in listed]
    assert not missing, f"sidebar lacks {missing}; it lists {listed}"
    in_order = list(dict.fromkeys(path for path in listed if path in expected))
    assert in_order == expected, f"sidebar order {in_order} differs from _toc.yml {expected}"
    empty = [link["path"] for link in nav if not link["text"]]
    assert not empty, f"sidebar links without text: {empty}"


# The checker itself, on stand-ins: these run without a built book.

BROKEN_PAGE = """<!DOCTYPE html><html><head><title>Broken &#8212; Book</title>
<link rel="stylesheet" href="missing.css"></head><body><article class="bd-article">
<h1>Broken<a class="headerlink" href="#">#</a></h1>
<p>The loss <span class="math notranslate nohighlight">\\(x^2\\)</span> as raw TeX.</p>
<div class="cell"><div class="cell_output">
<div class="output stderr"><pre>/x.py:3: UserWarning: careful</pre></div>
<img src="missing.png" alt="figure"></div></div>
<div class="cell"><div class="cell_output"><div class="output traceback">
<pre>Traceback (most recent call last):
ValueError: boom</pre></div></div></div>
<div class="cell tag_raises-exception"><div class="cell_output"><div class="output traceback">
<pre>KeyError: 'meant'</pre></div></div></div>
<div class="cell"><div class="cell_output"><div class="output stream">
<pre>loss 0.1
RuntimeError: oops</pre></div></div></div>
<script>throw new TypeError("page script failed")</script>
</article></body></html>"""


def test_toc_entries_walks_parts_chapters_and_sections_in_order(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text(
        "format: jb-book\nroot: book/intro\nparts:\n"
        "  - caption: A\n    chapters:\n      - file: book/a\n"
        "        sections:\n          - file: book/a1.ipynb\n      - url: https://example.org\n"
        "  - caption: B\n    chapters:\n      - file: book/b\n"
    )
    assert toc_entries(toc) == ["book/intro", "book/a", "book/a1.ipynb", "book/b"]
    toc.write_text("format: jb-book\nchapters: []\n")
    with pytest.raises(ValueError, match="root"):
        toc_entries(toc)


def test_is_notebook_tells_notebooks_from_pages_and_every_toc_entry_has_a_source(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "nb.ipynb").write_text("{}")
    (tmp_path / "book" / "page.md").write_text("# A page\n\ntext\n")
    (tmp_path / "book" / "text_nb.md").write_text("---\nkernelspec:\n  name: python3\n---\n# T\n")
    assert is_notebook("book/nb", tmp_path) and is_notebook("book/nb.ipynb", tmp_path)
    assert is_notebook("book/text_nb", tmp_path) and not is_notebook("book/page", tmp_path)
    with pytest.raises(FileNotFoundError, match="no_such_page"):
        is_notebook("book/no_such_page", tmp_path)
    for entry in ENTRIES:  # this book's _toc.yml: every entry resolves to a source file
        is_notebook(entry)


def test_html_path_strips_source_suffixes_only():
    assert html_path("book/intro") == "book/intro.html"
    assert html_path("book/01_problem.ipynb") == "book/01_problem.html"
    assert html_path("book/v1.2") == "book/v1.2.html"


def test_output_problems_flags_errors_and_counts_stderr_warnings():
    info = {
        "error_blocks": [
            {"kind": "output traceback", "text": "ValueError: x", "deliberate": False},
            {"kind": "output traceback", "text": "KeyError: y", "deliberate": True},
        ],
        "outputs": [
            {"stderr": True, "text": "a.py:1: UserWarning: w\n  warn()", "deliberate": False},
            {
                "stderr": False,
                "text": "Error rate: 3%\nmean squared error 0.1",
                "deliberate": False,
            },
            {"stderr": True, "text": "Traceback (most recent call last):", "deliberate": False},
            {"stderr": False, "text": "CheckpointError: bad file", "deliberate": True},
        ],
    }
    problems, counts = output_problems(info)
    assert len(problems) == 2, problems
    assert "ValueError: x" in problems[0] and "Traceback" in problems[1]
    assert counts == {"stderr_blocks": 2, "warning_lines": 1}


def test_probe_flags_a_broken_page(tmp_path, page):
    (tmp_path / "broken.html").write_text(BROKEN_PAGE)
    with serve(tmp_path) as url:
        page.goto(url + "broken.html")
        info = page.evaluate(PAGE_PROBE, await_promise=True)
        problems = page_problems(info, page.js_exceptions(), notebook=True)
    assert info["heading"] == "Broken" and info["title"].startswith("Broken")
    assert output_problems(info)[1] == {"stderr_blocks": 1, "warning_lines": 1}
    expected = [
        "no decoded <img>",
        "image does not decode: " + url + "missing.png",
        "resource failed: 404 " + url + "missing.css",
        "resource failed: 404 " + url + "missing.png",
        "ValueError: boom",
        "RuntimeError: oops",
        "JavaScript exception: TypeError: page script failed",
        "MathJax did not load",
    ]
    for fragment in expected:
        assert sum(fragment in problem for problem in problems) == 1, (fragment, problems)
    assert len(problems) == len(expected), problems
