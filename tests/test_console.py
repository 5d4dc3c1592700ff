"""colorlib.training.console: the progress bar's postfix, rank-0 printing, and Ctrl-C deferral."""

import os
import signal

import pytest

from colorlib.training.config import Stage
from colorlib.training.console import deferred_interrupt, postfix, print_main, progress_bar


def test_postfix_shows_totals_l1_and_minutes_left():
    losses = {"g_total": 1.23456, "d_total": 0.5, "g_l1": 0.012345, "g_adversarial": 0.7}
    assert postfix(losses, None) == {"g_total": "1.23", "d_total": "0.5", "g_l1": "0.0123"}
    assert postfix({}, 2.26) == {"min left": "2.3"}
    assert postfix({}, -0.4) == {"min left": "0.0"}  # over budget: never negative


def test_progress_bar_counts_a_stage_from_where_it_resumed():
    stages = (Stage("pretrain", max_steps=10), Stage("gan", max_minutes=1))
    bar = progress_bar(stages, 0, initial=4, show=True)
    assert (bar.total, bar.n, bar.desc) == (10, 4, "stage 1/2 pretrain")
    bar.close()
    bar = progress_bar(stages, 1, initial=0, show=True)
    assert bar.total is None and bar.desc == "stage 2/2 gan"
    bar.close()
    assert progress_bar(stages, 0, initial=0, show=False).disable


def test_print_main_prints_on_rank_zero_only(capsys, monkeypatch):
    print_main("hello")
    monkeypatch.setenv("RANK", "1")
    print_main("from rank 1")
    assert capsys.readouterr().out == "hello\n"


def test_first_ctrl_c_sets_the_flag_and_the_second_raises():
    before = signal.getsignal(signal.SIGINT)
    with deferred_interrupt(True) as flag:
        os.kill(os.getpid(), signal.SIGINT)
        assert flag.hit
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_disabled_deferral_leaves_ctrl_c_alone():
    before = signal.getsignal(signal.SIGINT)
    with deferred_interrupt(False) as flag:
        assert signal.getsignal(signal.SIGINT) is before and not flag.hit
