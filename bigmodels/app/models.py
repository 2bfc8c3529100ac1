"""A checkpoint's digest and its model, each computed once per server process.

The sandbox, the comparison and the launcher ask for the same checkpoints: one cache
here serves them all (a checkpoint the sandbox loaded is the comparison's too).
Entries are keyed by path, modification time and size, so a re-exported checkpoint is
read again and an unchanged one is read once per server, however many sessions ask.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import streamlit as st
import torch
from torch import nn

from bigmodels.analysis.explain import read_digit
from bigmodels.models import checkpoints
from bigmodels.runs.sources import ModelSource


@contextlib.contextmanager
def one_thread():
    """Run torch on one thread inside the block (this script thread only: with
    ATen's OpenMP backend the thread count is per thread; other sessions keep
    theirs). The sandbox does batch-1 work on tiny tensors, where extra threads
    are pure overhead -- and on a CPU shared with training jobs they spin-wait
    for each other: measured here on 2 busy cores, one LSTM answer took 8 s on
    2 threads and 20 ms on 1."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def stat_key(path: str | os.PathLike) -> tuple[str, int, int]:
    """(path, mtime_ns, size): what tells a rewritten file from the one cached."""
    stat = Path(path).stat()
    return str(path), stat.st_mtime_ns, stat.st_size


@st.cache_data(show_spinner=False, max_entries=256)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    del mtime_ns, size  # part of the key only
    return checkpoints.checkpoint_digest(path)


def checkpoint_digest(path: str | os.PathLike) -> str:
    """``bigmodels.models.checkpoints.checkpoint_digest``, read once per version of the file."""
    return _digest(*stat_key(path))


@st.cache_resource(show_spinner=False, max_entries=24)
def _model(path: str, mtime_ns: int, size: int) -> nn.Module:
    del mtime_ns, size  # part of the key only
    model = checkpoints.model_from_checkpoint(path)
    # The first answer and the first explanation pay one-off costs (allocations,
    # autograd's first backward, attention with weights): pay them here, once per
    # server, not in the first stroke a visitor makes.
    warm = torch.zeros(28, 28)
    warm[6:22, 12:16] = 1.0  # a "1"
    with one_thread():
        read_digit(model, warm, with_explanation=True)
    return model


def model_for(source: ModelSource) -> nn.Module:
    """The model of ``source`` in eval mode, shared by every page and session of this
    server; raises ``CheckpointError`` for an unreadable file."""
    return _model(*stat_key(source.checkpoint))
