"""The sandbox's one plotly chart: the LSTM's belief in each digit after each row it read."""
from __future__ import annotations

import plotly.graph_objects as go
import torch

from bigmodels.analysis.explain import believed_digits


def row_beliefs_figure(beliefs: torch.Tensor, rows_title: str, digits_title: str) -> go.Figure:
    """P(digit) after rows 1..28 for every digit it believed at some row, the final answer
    in front and in the probability bars' blue. The titles come translated."""
    final = int(beliefs[-1].argmax())
    rows = list(range(1, beliefs.shape[0] + 1))
    fig = go.Figure()
    earlier = iter(["#f08c00", "#12b886", "#868e96"])  # the final answer gets the bars' blue
    for digit in believed_digits(beliefs):
        fig.add_trace(go.Scatter(
            x=rows, y=beliefs[:, digit].tolist(), mode="lines", name=str(digit),
            line=dict(width=3, color="#3b5bdb") if digit == final else dict(width=1.5, color=next(earlier)),
            hovertemplate=rows_title + " %{x}: P(" + str(digit) + ") = %{y:.1%}<extra></extra>"))
    fig.update_layout(height=200, margin=dict(l=0, r=0, t=6, b=0), legend=dict(title=digits_title),
                      xaxis=dict(title=rows_title, range=[1, len(rows)], fixedrange=True),
                      yaxis=dict(range=[0, 1], tickformat=".0%", fixedrange=True))
    return fig
