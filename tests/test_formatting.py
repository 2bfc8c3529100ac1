"""Byte sizes, durations and FLOP counts as people read them."""
import pytest

from bigmodels.formatting import format_bytes, format_duration, format_flops


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
