"""Byte sizes, durations and FLOP counts as people read them."""
import math

import pytest

from bigmodels.base.formatting import format_bytes, format_duration, format_flops


def test_binary_bytes_for_memory_and_files():
    assert format_bytes(None) == "–" and format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KiB" and format_bytes(3 * 2**20) == "3.0 MiB"
    assert format_bytes(2**50) == "1024.0 TiB"  # TiB is the largest unit


def test_decimal_bytes_as_datasheets_print_them():
    assert format_bytes(810e9, si=True) == "810.00 GB" and format_bytes(512, si=True) == "512 B"
    assert format_bytes(2.5e15, si=True) == "2.50 PB" and format_bytes(999, si=True) == "999 B"


def test_durations():
    assert format_duration(None) == "–" and format_duration(5) == "5s"
    assert format_duration(65) == "1m 05s" and format_duration(3700) == "1h 01m"


def test_flops_in_scientific_notation():
    assert format_flops(3.15e23) == "3.15 × 10²³"
    with pytest.raises(ValueError):
        format_flops(0)


def test_counts_and_money_as_each_language_writes_them():
    from bigmodels.base.formatting import format_count_in, format_money

    assert format_count_in(671e9) == "671B" and format_count_in(671e9, "zh") == "6710 亿"
    assert format_count_in(61_706) == "61.7K" and format_count_in(None) == "–"
    assert format_money(442_366) == "US$442K" and format_money(442_366, "zh") == "44.2 万美元"
    assert format_money(950, "zh") == "950 美元" and format_money(4.6e6) == "US$4.6M"


def test_log_axis_ticks_are_powers_of_ten_or_1_2_5_never_crowded():
    from bigmodels.base.formatting import format_si_bytes, log_axis

    wide = log_axis([3e4, 2e8])
    assert wide["tickvals"] == [1e5, 1e6, 1e7, 1e8] and wide["ticktext"] == ["100K", "1M", "10M", "100M"]
    narrow = log_axis([61_706, 214_282])  # less than a decade: 1-2-5 steps, still a few ticks
    assert narrow["ticktext"] == ["50K", "100K", "200K"]
    assert all(narrow["range"][0] <= math.log10(v) <= narrow["range"][1] for v in narrow["tickvals"])
    assert log_axis([9e6, 2.5e9], format_si_bytes)["ticktext"] == ["10 MB", "100 MB", "1 GB"]
    assert log_axis([]) == {"type": "log"}


def test_plain_markdown_shows_text_as_written_and_links_nothing():
    from bigmodels.base.formatting import WORD_JOINER, code_span, plain_markdown

    text = "![p](http://h.test/x.png) *b* <img src=x> www.a.test a@b.test :smile: $x$\n# not a heading"
    out = plain_markdown(text)
    assert "![" not in out and "](" not in out and "\\<img" in out and "*b*" not in out and "\n#" not in out
    assert "http://" not in out and "www." not in out.lower() and "a@b" not in out  # nothing to auto-link
    unescaped = out.replace("\\", "").replace(WORD_JOINER, "").replace("  \n", "\n")
    assert unescaped == text  # only escapes and invisible joiners were added
    assert code_span("a`b") == "`` a`b ``" and code_span("x") == "` x `"
