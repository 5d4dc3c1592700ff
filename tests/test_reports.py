"""colorlib.reports: benchmark results found, loaded, tabulated and drawn, on hand-made files."""

import json

import pytest
from matplotlib.figure import Figure

from colorlib.reports import (
    VARIANT_NAMES,
    amp_speedups,
    find_results,
    load_results,
    recorded,
    step_table,
    throughput_panel,
    train_rows,
)

# a train_bench.py result of two models in two precisions; the numbers are chosen by hand
TRAIN = {
    "hardware": "test machine",
    "rows": [
        {"model": "unet", "size": 64, "precision": "fp32", "bare_ips": 100.0, "fit_ips": 80.0,
         "fit_cost_pct": 25.0, "fit_ms_per_step": 10.0},
        {"model": "unet", "size": 64, "precision": "fp16 AMP+channels-last", "bare_ips": 150.0,
         "fit_ips": 120.0, "fit_cost_pct": 25.0, "fit_ms_per_step": 7.5},
        {"model": "ddcolor", "size": 64, "precision": "fp32", "bare_ips": 10.0, "fit_ips": 10.0,
         "fit_cost_pct": 0.0, "fit_ms_per_step": 0.0},
        {"model": "ddcolor", "size": 64, "precision": "fp16 AMP+channels-last", "bare_ips": 12.0,
         "fit_ips": 9.0, "fit_cost_pct": 33.3, "fit_ms_per_step": -2.0},
    ],
}  # fmt: skip


def _results_folder(root):
    folder = root / "benchmarks" / "results"
    folder.mkdir(parents=True)
    (folder / "train_x.json").write_text(json.dumps(TRAIN))
    (folder / "a_first.json").write_text('{"hardware": "CPU", "torch": "2.0"}')
    (folder / "notes.txt").write_text("not a result")
    return folder


def test_find_results_prefers_the_given_folder(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    _results_folder(repo)
    (repo / "book").mkdir()
    mine = tmp_path / "mine"
    mine.mkdir()
    monkeypatch.chdir(repo / "book")
    assert find_results(mine) == mine.resolve()
    assert find_results(str(mine)) == mine.resolve()
    # a folder that does not exist, or none: the usual places
    assert find_results(tmp_path / "absent") == (repo / "benchmarks" / "results").resolve()
    assert find_results() == (repo / "benchmarks" / "results").resolve()


def test_find_results_looks_in_the_books_parent_before_the_working_directory(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    _results_folder(repo)
    _results_folder(repo / "book")  # book/benchmarks/results exists too
    monkeypatch.chdir(repo / "book")
    assert find_results() == (repo / "benchmarks" / "results").resolve()


def test_find_results_walks_up_to_the_nearest_folder(tmp_path, monkeypatch):
    _results_folder(tmp_path)
    _results_folder(tmp_path / "a")
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)  # ../benchmarks/results is b/benchmarks/results: absent
    assert find_results() == (tmp_path / "a" / "benchmarks" / "results").resolve()
    monkeypatch.chdir(tmp_path / "a")  # ../benchmarks/results comes before its own
    assert find_results() == (tmp_path / "benchmarks" / "results").resolve()
    own = tmp_path / "other" / "own"
    _results_folder(own)
    monkeypatch.chdir(own)  # its own, before the one two levels up
    assert find_results() == (own / "benchmarks" / "results").resolve()


def test_find_results_gives_none_without_a_folder(tmp_path, monkeypatch):
    (tmp_path / "book").mkdir()
    monkeypatch.chdir(tmp_path / "book")
    assert find_results() is None


def test_load_results_reads_every_json_file_in_name_order(tmp_path, capsys):
    results = load_results(_results_folder(tmp_path))
    assert list(results) == ["a_first", "train_x"]
    assert results["a_first"] == {"hardware": "CPU", "torch": "2.0"}
    assert results["train_x"] == TRAIN
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("empty", [True, False])
def test_load_results_says_when_there_are_none(tmp_path, capsys, empty):
    assert load_results(tmp_path if empty else None) == {}
    out = capsys.readouterr().out
    assert "No benchmark results found" in out and "the recorded sections are skipped" in out


def test_load_results_rejects_a_missing_folder_and_bad_json(tmp_path):
    with pytest.raises(NotADirectoryError, match="no results folder at"):
        load_results(tmp_path / "absent")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"broken\.json: not valid JSON"):
        load_results(tmp_path)


def test_recorded_names_what_is_missing(capsys):
    results = {"a": {}, "b": {}}
    assert recorded(results, "a", "b") and recorded(results)
    assert capsys.readouterr().out == ""
    assert not recorded(results, "a", "c", "d")
    assert capsys.readouterr().out == (
        "(not shown: c.json, d.json missing from the benchmark results)\n"
    )
    assert not recorded({}, "a")  # nothing loaded: load_results has said so already
    assert capsys.readouterr().out == ""


def test_train_rows_one_row_per_model_size_and_precision():
    rows = train_rows(TRAIN)
    assert list(rows) == [
        "unet 64px fp32",
        "unet 64px fp16 AMP+channels-last",
        "ddcolor 64px fp32",
        "ddcolor 64px fp16 AMP+channels-last",
    ]
    assert rows["unet 64px fp16 AMP+channels-last"] == {
        "bare img/s": 150.0,
        "fit img/s": 120.0,
        "fit cost %": 25.0,
        "fit ms/step": 7.5,
    }


def test_amp_speedups_divide_fp16_by_fp32_images_per_second():
    table = amp_speedups(TRAIN["rows"], " (run 2)")
    assert list(table) == ["unet (run 2)", "ddcolor (run 2)"]
    assert table["unet (run 2)"] == pytest.approx({"bare fp16/fp32": 1.5, "fit fp16/fp32": 1.5})
    assert table["ddcolor (run 2)"] == pytest.approx({"bare fp16/fp32": 1.2, "fit fp16/fp32": 0.9})
    assert list(amp_speedups(TRAIN["rows"])) == ["unet", "ddcolor"]
    with pytest.raises(ValueError, match="ddcolor has no fp16 row"):
        amp_speedups(TRAIN["rows"][:3])


def test_step_table_ratios_to_the_float32_step():
    rows = {
        VARIANT_NAMES[False, False]: {"s_per_step": 2.0, "peak_mib": 100.0, "base_mib": 50.0},
        VARIANT_NAMES[True, False]: {"s_per_step": 5.0, "peak_mib": 40.0, "base_mib": 50.0},
    }
    table = step_table(rows, batch_size=4)
    assert list(table) == ["float32", "checkpointing"]
    assert table["float32"] == pytest.approx(
        {"s/step": 2, "img/s": 2, "peak MiB": 100, "x memory": 1, "x time": 1, "base MiB": 50}
    )
    assert table["checkpointing"] == pytest.approx(
        {"s/step": 5, "img/s": 0.8, "peak MiB": 40, "x memory": 0.4, "x time": 2.5, "base MiB": 50}
    )
    with pytest.raises(KeyError, match="float32"):
        step_table({"checkpointing": rows["checkpointing"]}, 4)


def test_variant_names_label_every_checkpointing_and_autocast_pair():
    assert VARIANT_NAMES == {
        (False, False): "float32",
        (True, False): "checkpointing",
        (False, True): "autocast",
        (True, True): "checkpointing + autocast",
    }


def test_throughput_panel_draws_a_bar_per_model_precision_and_loop():
    ax = Figure().subplots()
    throughput_panel(ax, TRAIN, "a title")
    # one container per (precision, loop), in that order; one bar per model in each
    expected = {
        "fp32: bare loop": [100, 10],
        "fp32: fit()": [80, 10],
        "fp16 AMP+channels-last: bare loop": [150, 12],
        "fp16 AMP+channels-last: fit()": [120, 9],
    }
    assert [c.get_label() for c in ax.containers] == list(expected)
    for container, heights in zip(ax.containers, expected.values(), strict=True):
        assert [bar.get_height() for bar in container] == heights
        hatched = container.get_label().endswith("fit()")
        assert all((bar.get_hatch() == "//") == hatched for bar in container)
    bars = [bar for container in ax.containers for bar in container]
    assert len(bars) == 8 and len(ax.patches) == 8
    # each model's four bars sit side by side around its tick, bare before fit
    for model in range(2):
        centres = [c[model].get_x() + c[model].get_width() / 2 for c in ax.containers]
        assert centres == sorted(centres) and sum(centres) / 4 == pytest.approx(model)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["unet", "ddcolor"]
    assert [t.get_text() for t in ax.texts] == ["100", "10", "80", "10", "150", "12", "120", "9"]
    assert ax.get_title() == "a title" and ax.get_ylabel() == "training images per second"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(expected)
