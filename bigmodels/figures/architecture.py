"""How each architecture reads a digit, drawn from the real module.

* ``block_diagram_svg`` turns ``profile_model(model).layers`` (the layers a
  forward pass really called, with their output shapes and parameter counts)
  into a self-contained SVG block diagram -- no external renderer.
* The inductive-bias figures put a real test digit next to what the trained
  model computes on it: the CNN's 5x5 receptive field and the feature maps its
  shared filters produce; the LSTM's rows as time steps and its belief after
  each row; the Transformer's patch grid and where its class token attends.
  What the model computes comes from ``bigmodels.analysis.explain``, the
  sandbox's explainer, so both pages show the same numbers.
"""
from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import nn

from bigmodels.analysis.explain import explain_cnn, patch_weights, row_probabilities, transformer_attention
from bigmodels.data.digits import centre_of_mass, from_uint8
from bigmodels.models.nets import IMAGE_SIZE, LeNet5, RowLSTM, VisionTransformer
from bigmodels.models.profile import LayerRow

# ------------------------------------------------------------ block diagrams
KIND_COLOURS = {
    "Conv2d": "#1971c2", "Linear": "#5f3dc4", "LSTM": "#e8590c", "TransformerEncoderLayer": "#2b8a3e",
    "LayerNorm": "#868e96", "ReLU": "#adb5bd", "MaxPool2d": "#74c0fc", "Flatten": "#ced4da",
}
_WEIGHTED_HEIGHT, _LIGHT_HEIGHT, _GAP, _WIDTH = 42, 24, 10, 460


def shape_text(shape: tuple[int, ...]) -> str:
    """(1, 6, 28, 28) -> '6×28×28': the batch dimension of the one profiling image is dropped."""
    return "×".join(str(d) for d in shape[1:]) or "1"


def block_diagram_svg(layers: list[LayerRow], total_parameters: int, title: str,
                      input_shape: tuple[int, ...] = (1, 1, IMAGE_SIZE, IMAGE_SIZE),
                      params_word: str = "params", input_word: str = "input",
                      extra_word: str = "outside any layer") -> str:
    """An SVG with one box per layer the forward pass called, top to bottom.

    Layers with weights are tall boxes with a bar showing their share of all
    parameters; parameter-free steps (activations, pooling, flatten) are thin,
    so the eye finds where the model's size lives. Parameters that belong to
    no layer (a ViT's class token and positions) are listed at the end.
    """
    rows: list[tuple[str, str, str, int]] = [(input_word, "", shape_text(input_shape), 0)]
    rows += [(layer.name, layer.kind, shape_text(layer.output_shape), layer.parameters) for layer in layers]
    loose = total_parameters - sum(layer.parameters for layer in layers)
    parts = [f'<text x="0" y="16" font-size="15" font-weight="600" fill="#1b1e28">{html.escape(title)}</text>']
    y = 28
    for i, (name, kind, shape, params) in enumerate(rows):
        height = _WEIGHTED_HEIGHT if params or i == 0 else _LIGHT_HEIGHT
        colour = KIND_COLOURS.get(kind, "#495057" if i else "#f1f3f9")
        if i:  # the arrow from the previous box
            parts.append(f'<line x1="{_WIDTH / 2}" y1="{y - _GAP}" x2="{_WIDTH / 2}" y2="{y - 1}" '
                         f'stroke="#868e96" stroke-width="1.5" marker-end="url(#arrow)"/>')
        parts.append(f'<rect x="0" y="{y}" width="{_WIDTH}" height="{height}" rx="6" fill="#ffffff" '
                     f'stroke="{colour}" stroke-width="1.5"/>')
        parts.append(f'<rect x="0" y="{y}" width="8" height="{height}" rx="3" fill="{colour}"/>')
        label = f"{name} · {kind}" if kind else name
        if height == _LIGHT_HEIGHT:
            parts.append(f'<text x="16" y="{y + 16}" font-size="12" fill="#495057">{html.escape(label)}'
                         f' → {html.escape(shape)}</text>')
        else:
            parts.append(f'<text x="16" y="{y + 17}" font-size="13" font-weight="600" fill="#1b1e28">'
                         f'{html.escape(label)}</text>')
            detail = f"→ {shape}" + (f"   ·   {params:,} {params_word}" if params else "")
            parts.append(f'<text x="16" y="{y + 34}" font-size="12" fill="#495057">{html.escape(detail)}</text>')
            if params and total_parameters:
                share = params / total_parameters
                parts.append(f'<rect x="{_WIDTH - 110}" y="{y + 10}" width="100" height="8" fill="#e9ecef"/>')
                parts.append(f'<rect x="{_WIDTH - 110}" y="{y + 10}" width="{max(1.0, 100 * share):.1f}" '
                             f'height="8" fill="{colour}"/>')
                parts.append(f'<text x="{_WIDTH - 10}" y="{y + 32}" font-size="11" text-anchor="end" '
                             f'fill="#495057">{share:.1%}</text>')
        y += height + _GAP
    if loose:
        parts.append(f'<text x="16" y="{y + 10}" font-size="12" fill="#495057">'
                     f'+ {loose:,} {html.escape(params_word)} {html.escape(extra_word)}</text>')
        y += 18
    defs = ('<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="6" refY="4" orient="auto">'
            '<path d="M0,0 L8,4 L0,8 z" fill="#868e96"/></marker></defs>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH + 2}" height="{y + 4}" '
            f'viewBox="-1 0 {_WIDTH + 2} {y + 4}" font-family="sans-serif" role="img" '
            f'aria-label="{html.escape(title)}">{defs}{"".join(parts)}</svg>')


# --------------------------------------------------------- what models compute
def receptive_fields(model: LeNet5) -> list[dict]:
    """Receptive field of one unit after each conv/pool stage of the CNN, walked
    from the real modules: each layer widens the field by (kernel-1) input
    steps, and strides multiply the step."""
    size, jump, out = 1, 1, []
    for name, module in model.features.named_children():
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
            k = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
            s = module.stride if isinstance(module.stride, int) else module.stride[0]
            size += (k - 1) * jump
            jump *= s
            out.append({"layer": f"features.{name}", "kind": type(module).__name__, "size": size, "jump": jump})
    return out


def first_conv_maps(model: LeNet5, image: torch.Tensor) -> np.ndarray:
    """The first convolution's output (after ReLU) for one uint8 digit: one map
    per filter, each made by sliding the same 5x5 weights over every position."""
    model.eval()
    return explain_cnn(model, from_uint8(image)).feature_maps.numpy()


def row_beliefs(model: RowLSTM, image: torch.Tensor) -> np.ndarray:
    """(28, 10): the LSTM's class probabilities after reading each row."""
    model.eval()
    return row_probabilities(model, from_uint8(image)).numpy()


def attention_maps(model: VisionTransformer, image: torch.Tensor) -> list[torch.Tensor]:
    """Each encoder layer's attention weights (tokens x tokens, averaged over
    heads), from the sandbox's layer-by-layer recomputation of the encoder."""
    model.eval()
    return list(transformer_attention(model, from_uint8(image)).attention.mean(1))


def class_token_attention(model: VisionTransformer, image: torch.Tensor) -> np.ndarray:
    """(grid, grid): how much the last layer's class token (or, with mean
    pooling, the average token) attends to each patch."""
    weights = patch_weights(attention_maps(model, image)[-1], model.cls_token is not None)
    grid = model.config.grid
    return weights.reshape(grid, grid).numpy()


# ------------------------------------------------------------------ figures
_GREYS = [[0, "#ffffff"], [1, "#000000"]]


def _digit(fig: go.Figure, image: torch.Tensor, row: int = 1, col: int = 1) -> None:
    fig.add_trace(go.Heatmap(z=image.numpy()[::-1], colorscale=_GREYS, showscale=False, hoverinfo="skip"),
                  row=row, col=col)


def _square_axes(fig: go.Figure, row: int, col: int, size: int = IMAGE_SIZE) -> None:
    fig.update_xaxes(range=[-0.5, size - 0.5], showticklabels=False, showgrid=False, zeroline=False,
                     constrain="domain", row=row, col=col)
    fig.update_yaxes(range=[-0.5, size - 0.5], showticklabels=False, showgrid=False, zeroline=False,
                     scaleanchor=fig.get_subplot(row, col).xaxis.plotly_name.replace("axis", ""),
                     constrain="domain", row=row, col=col)


def ink_centre(image: torch.Tensor) -> tuple[int, int]:
    """(row, col) of the digit's centre of ink, where the receptive fields are
    drawn; (0, 0) for a blank image."""
    if not image.any():
        return 0, 0
    r, c = centre_of_mass(image)
    return round(r), round(c)


def _box(fig: go.Figure, centre: tuple[int, int], size: int, colour: str, row: int, col: int, dash: str = "solid"):
    r, c = centre
    half = size / 2
    # The heatmap is drawn flipped (row 0 at the top), so image row r is at y = 27 - r.
    fig.add_shape(type="rect", x0=c - half, x1=c + half, y0=IMAGE_SIZE - 1 - r - half, y1=IMAGE_SIZE - 1 - r + half,
                  line={"color": colour, "width": 3, "dash": dash}, row=row, col=col)


def cnn_figure(image: torch.Tensor, model: LeNet5, labels: dict[str, str]) -> go.Figure:
    """The digit with the first layer's kernel-sized window and the receptive
    field of a second-stage unit, beside the first layer's feature maps."""
    fields = receptive_fields(model)
    maps = first_conv_maps(model, image)
    n = min(len(maps), 6)
    fig = make_subplots(rows=2, cols=4, specs=[[{"rowspan": 2}, {}, {}, {}], [None, {}, {}, {}]],
                        column_widths=[0.4, 0.2, 0.2, 0.2], horizontal_spacing=0.03, vertical_spacing=0.08,
                        subplot_titles=[labels["digit"]] + [f"{labels['filter']} {i + 1}" for i in range(n)])
    _digit(fig, image)
    _square_axes(fig, 1, 1)
    centre = ink_centre(image)
    _box(fig, centre, model.config.kernel_size, "#e8590c", 1, 1)
    conv_fields = [f for f in fields if f["kind"] == "Conv2d"]
    if len(conv_fields) > 1:
        _box(fig, centre, conv_fields[1]["size"], "#1971c2", 1, 1, dash="dash")
    for i in range(n):
        row, col = 1 + i // 3, 2 + i % 3
        fig.add_trace(go.Heatmap(z=maps[i][::-1], colorscale="Viridis", showscale=False,
                                 hovertemplate="%{z:.2f}<extra></extra>"), row=row, col=col)
        _square_axes(fig, row, col, maps[i].shape[-1])
    fig.update_layout(height=380, margin={"l": 5, "r": 5, "t": 30, "b": 5})
    return fig


def lstm_figure(image: torch.Tensor, beliefs: np.ndarray, true_label: int, labels: dict[str, str]) -> go.Figure:
    """The digit cut into its 28 rows (time steps), beside the probability the
    LSTM gives the true class -- and its top guess -- after each row."""
    fig = make_subplots(rows=1, cols=2, column_widths=[0.45, 0.55], horizontal_spacing=0.08,
                        subplot_titles=[labels["digit"], labels["belief"]])
    _digit(fig, image)
    _square_axes(fig, 1, 1)
    for r in range(IMAGE_SIZE + 1):
        fig.add_shape(type="line", x0=-0.5, x1=IMAGE_SIZE - 0.5, y0=r - 0.5, y1=r - 0.5,
                      line={"color": "#e8590c", "width": 0.6}, row=1, col=1)
    rows = np.arange(1, IMAGE_SIZE + 1)
    final_guess = int(beliefs[-1].argmax())
    fig.add_trace(go.Scatter(x=rows, y=beliefs[:, true_label], mode="lines+markers", name=labels["true"]
                             .format(digit=true_label), line={"color": "#2b8a3e"}), row=1, col=2)
    if final_guess != true_label:
        fig.add_trace(go.Scatter(x=rows, y=beliefs[:, final_guess], mode="lines+markers",
                                 name=labels["guess"].format(digit=final_guess), line={"color": "#c92a2a"}),
                      row=1, col=2)
    fig.update_xaxes(title_text=labels["rows_read"], range=[0.5, IMAGE_SIZE + 0.5], row=1, col=2)
    fig.update_yaxes(title_text=labels["probability"], range=[0, 1.02], row=1, col=2)
    fig.update_layout(height=360, margin={"l": 5, "r": 5, "t": 30, "b": 5}, legend={"orientation": "h", "y": -0.2})
    return fig


def transformer_figure(image: torch.Tensor, attention: np.ndarray, patch_size: int,
                       labels: dict[str, str]) -> go.Figure:
    """The digit cut into patches (the tokens), beside where the class token
    attends in the last layer."""
    grid = IMAGE_SIZE // patch_size
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.06, subplot_titles=[labels["patches"],
                                                                                 labels["attention"]])
    _digit(fig, image)
    _square_axes(fig, 1, 1)
    for k in range(grid + 1):
        edge = k * patch_size - 0.5
        style = {"color": "#2b8a3e", "width": 1.2}
        fig.add_shape(type="line", x0=edge, x1=edge, y0=-0.5, y1=IMAGE_SIZE - 0.5, line=style, row=1, col=1)
        fig.add_shape(type="line", x0=-0.5, x1=IMAGE_SIZE - 0.5, y0=edge, y1=edge, line=style, row=1, col=1)
    fig.add_trace(go.Heatmap(z=attention[::-1], colorscale="Magma", reversescale=True, showscale=True,
                             colorbar={"len": 0.8, "thickness": 10},
                             hovertemplate="%{z:.3f}<extra></extra>"), row=1, col=2)
    _square_axes(fig, 1, 2, grid)
    fig.update_layout(height=360, margin={"l": 5, "r": 5, "t": 30, "b": 5})
    return fig
