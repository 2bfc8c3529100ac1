"""Architecture comparison: CNN vs LSTM vs Transformer on measured numbers,
how each reads a digit, how cost grows with scale, and the article's code fixed.

A thin view: numbers, figures and diagrams come from bigmodels.reports.comparison,
bigmodels.figures.architecture, bigmodels.analysis.scaling and bigmodels.analysis.article_fixes;
caching and background work from bigmodels.app.comparison.
"""
from __future__ import annotations

import streamlit as st

from bigmodels.figures import comparison as cfig
from bigmodels.reports import comparison as cmp
from bigmodels.analysis import scaling
from bigmodels.figures import scaling as scaling_figures
from bigmodels.analysis.article_fixes import FIXES
from bigmodels.app import comparison as ui
from bigmodels.app.models import model_for, stat_key
from bigmodels.app.charts import chart
from bigmodels.app.live import LIVE_REFRESH_S, follow
from bigmodels.app.routing import page_link
from bigmodels.app.session import current_data, language, model_title, t
from bigmodels.base.formatting import format_bytes, format_count_in
from bigmodels.figures import architecture as diagrams
from bigmodels.models.checkpoints import CheckpointError
from bigmodels.models.registry import list_models

lang = language()
st.title(t("comparison.title"))
st.write(t("comparison.intro", article=t("app.source_article")))

data, data_error = current_data()
if data_error:
    st.error(t("comparison.data.error", error=data_error))
if data.is_sample:
    st.warning(t("comparison.data.sample_warning", n_test=len(data.test_labels)))

SECTIONS = ("side", "mistakes", "reading", "scale", "article")
# ?section=scale opens a section directly, so a link can point at it; the URL follows the choice.
if st.query_params.get("section") in SECTIONS and "comparison_section" not in st.session_state:
    st.session_state["comparison_section"] = st.query_params["section"]
section = st.radio(t("comparison.section.label"), SECTIONS, horizontal=True, key="comparison_section",
                   format_func={s: t(f"comparison.section.{s}") for s in SECTIONS}.get, label_visibility="collapsed",
                   on_change=lambda: st.query_params.update(section=st.session_state["comparison_section"]))

all_sources, sources_error = ui.sources()
if sources_error:
    st.error(t("comparison.sources.error", error=sources_error))


def gather(items, fetch, label):
    """``fetch(item)`` for each item: (item, result) for the ready ones and the job
    keys of those still running in the background; a failure is shown, not raised."""
    ready, pending = [], []
    for item in items:
        try:
            result = fetch(item)
        except (CheckpointError, RuntimeError) as exc:
            st.error(t("comparison.entry.error", model=label(item), error=exc))
            continue
        (pending.append(result.key) if isinstance(result, ui.Pending) else ready.append((item, result)))
    return ready, pending


def resolve(chosen):
    """Entries for the chosen sources; pending and failed ones are reported."""
    ready, pending = gather(chosen, lambda source: ui.entry_for(source, data), lambda source: source.label)
    return [entry for _, entry in ready], pending


def chosen_entries():
    """The model picker (shared by the side-by-side and mistakes sections), the
    entries it resolves to, and this machine's measurements of them; starts
    and waits for the background work still missing. None when nothing to show."""
    if not all_sources:
        st.info(t("comparison.none"))
        return None
    by_id = {s.id: s for s in all_sources}
    default = [s.id for s in all_sources if s.origin == "shipped"]
    chosen_ids = st.multiselect(t("comparison.picker"), list(by_id), default=default,
                                format_func=lambda i: by_id[i].label, key="comparison_models",
                                help=t("comparison.picker_help"), placeholder=t("comparison.picker_placeholder"))
    chosen = [by_id[i] for i in chosen_ids]
    if not chosen:
        st.info(t("comparison.pick_one"))
        return None
    if live := follow("comparison", {s.id: s for s in chosen}):  # runs still training: refresh per epoch
        st.caption(t("comparison.live.watching", runs=", ".join(s.label for s in live.values()), seconds=LIVE_REFRESH_S))
    try:
        ui.shipped_metrics()
    except CheckpointError as exc:  # shipped models are then evaluated here instead
        st.warning(t("comparison.metrics_unreadable", error=exc))
    entries, pending = resolve(chosen)

    # Peak memory is measured here, once per checkpoint; timings too when asked.
    measured = {e.source.id: ui.measured_here(e.source) for e in entries}
    if st.button(t("comparison.remeasure"), help=t("comparison.remeasure_help"), key="comparison_remeasure"):
        measuring = [ui.start_measuring(e.source, again=True) for e in entries]
    else:
        measuring = [ui.start_measuring(e.source) for e in entries if measured[e.source.id] is None]
    for entry in entries:
        error = ui.jobs().error(ui.measurement_job(entry.source))
        if error:
            st.warning(t("comparison.measure_failed", model=entry.label, error=error))
    busy = ui.jobs().busy(pending) + ui.jobs().busy(measuring)
    if busy:
        ui.wait_for(busy, t("comparison.working", evaluating=len(pending), measuring=len(measuring)))
    if ui.measurements_store().error:
        st.warning(t("comparison.store_error", error=ui.measurements_store().error))
    return (entries, measured) if entries else None


MEASURED_HERE = ("peak_infer_mb", "peak_train_mb")  # filled by this machine's measurement, in the background


def pending_as_words(rows: list[dict], entries, measured: dict) -> list[dict]:
    """The columns this machine measures, as the table shows them: the number, or
    "measuring…" while its measurement runs, or "–" when there is none (never a raw None)."""
    for row, entry in zip(rows, entries):
        waiting = measured.get(entry.source.id) is None and ui.jobs().busy([ui.measurement_job(entry.source)])
        for key in MEASURED_HERE:
            value = row.get(key)
            row[key] = f"{value:,.1f}" if value is not None else t("comparison.table.measuring") if waiting else "–"
    return rows


def side_by_side() -> None:
    if (chosen := chosen_entries()) is None:
        return
    entries, measured = chosen
    st.subheader(t("comparison.table.header"))
    rows = pending_as_words(cmp.table_rows(entries, measured, lang), entries, measured)
    same = {key: rows[0][key] for key in ("test_data", "measured") if len({row[key] for row in rows}) == 1}
    col = st.column_config
    # widths in px that add up to the ~810 px a 1280 px screen leaves beside the sidebar (the model
    # column holds a run's label whole: "LeNet-5 CNN · run cnn-261206-193926-c854")
    config = {
        "model": col.TextColumn(t("comparison.col.model"), pinned=True, width=270),  # a run's label is long
        "accuracy": col.NumberColumn(t("comparison.col.accuracy"), format="%.2f%%", width=110),
        "throughput": col.NumberColumn(t("comparison.col.throughput"), format="localized", width=110,
                                       help=t("comparison.col.throughput_help")),
        "latency_ms": col.NumberColumn(t("comparison.col.latency"), format="%.2f", width=110,
                                       help=t("comparison.col.latency_help")),
        "parameters": col.NumberColumn(t("comparison.col.parameters"), format="localized", width=110),
        "disk_mb": col.NumberColumn(t("comparison.col.disk"), format="%.2f", width=100),
        "macs": col.NumberColumn(t("comparison.col.macs"), format="compact", width=120,
                                 help=t("comparison.col.macs_help")),
        "train_s_per_epoch": col.NumberColumn(t("comparison.col.train"), format="%.1f", width=90,
                                              help=t("comparison.col.train_help")),
        "peak_infer_mb": col.TextColumn(t("comparison.col.peak_infer", batch=cmp.INFER_BATCH), alignment="right",
                                        width=165, help=t("comparison.col.peak_help")),
        "peak_train_mb": col.TextColumn(t("comparison.col.peak_train", batch=cmp.TRAIN_BATCH), alignment="right",
                                        width=165, help=t("comparison.col.peak_help")),
        "test_data": col.TextColumn(t("comparison.col.test_data"), width=150),
        "measured": col.TextColumn(t("comparison.col.measured"), width=240),
    }
    # Two tables that each fit a 1280 px screen: what people look for first, then the costs;
    # a column that is the same in every row is said once, below them.
    st.dataframe(rows, hide_index=True, width="stretch", column_config=config, key="comparison_table",
                 column_order=("model", "accuracy", "throughput", "latency_ms", "parameters", "disk_mb"))
    st.markdown(f"**{t('comparison.table.costs')}**")
    st.dataframe(rows, hide_index=True, width="stretch", column_config=config, key="comparison_table_costs",
                 column_order=("model", "macs", "train_s_per_epoch", "peak_infer_mb", "peak_train_mb",
                               *(key for key in ("test_data", "measured") if key not in same)))
    if same:
        st.caption(" ".join(t(f"comparison.table.same_{key}", value=value) for key, value in same.items()))
    mixed = "test_data" not in same
    st.caption(t("comparison.table.caption", infer=cmp.INFER_BATCH, train=cmp.TRAIN_BATCH))
    if mixed or any(e.metrics.get("data_source") != entries[0].metrics.get("data_source") for e in entries):
        st.warning(t("comparison.table.mixed_data"))

    left, right = st.columns(2)
    with left:
        chart(ui.figure(cfig.accuracy_vs_parameters, entries, lang), key="comparison_acc_params")
    with right:
        chart(ui.figure(cfig.accuracy_vs_latency, entries, measured, lang), key="comparison_acc_latency")
    st.caption(t("comparison.chart.pareto_caption"))
    st.subheader(t("comparison.curves.header"))
    chart(ui.figure(cfig.learning_curves, entries, lang), key="comparison_curves")
    chart(ui.figure(cfig.per_class_figure, entries, lang), key="comparison_per_class")


def mistakes() -> None:
    if (chosen := chosen_entries()) is None:
        return
    entries, _ = chosen
    st.subheader(t("comparison.confusion.header"))
    for start in range(0, len(entries), 3):
        for column, entry in zip(st.columns(3), entries[start:start + 3]):
            with column:
                chart(ui.figure(cfig.confusion_figure, entry, lang), key=f"comparison_confusion_{entry.source.id}")
    st.caption(t("comparison.confusion.caption"))
    gallery(entries)


def show_digits(found, labels_key="comparison.gallery.tile") -> None:
    if not found:
        st.caption(t("comparison.gallery.none"))
        return
    st.image([cfig.digit_tile(data.test_images[m.index]) for m in found],
             caption=[t(labels_key, index=m.index, true=m.true, predicted=m.predicted,
                        confidence=f"{m.confidence:.0%}") for m in found], width=84)


def gallery(entries) -> None:
    st.subheader(t("comparison.gallery.header"))
    if data.is_sample:
        st.caption(t("comparison.gallery.sample_note", n_test=len(data.test_labels)))
    gathered, pending = gather(entries, lambda entry: ui.gallery_metrics(entry, data), lambda entry: entry.label)
    ready = {}
    for entry, metrics in gathered:
        ready.setdefault(entry.source.id, metrics)
    if ui.jobs().busy(pending):
        ui.wait_for(ui.jobs().busy(pending), t("comparison.evaluating", n=len(pending)))
    named = [e for e in entries if e.source.id in ready]
    if not named:
        return
    for tab, entry in zip(st.tabs([e.label for e in named]), named):
        with tab:
            metrics = ready[entry.source.id]
            wrong = len(metrics.get("misclassified") or [])
            st.caption(t("comparison.gallery.count", n=wrong, total=len(data.test_labels)))
            show_digits(cmp.mistakes(metrics, data.test_labels, limit=16))
    if len(named) >= 2:
        st.markdown(f"**{t('comparison.gallery.versus')}**")
        ids = [e.source.id for e in named]
        label = {e.source.id: e.label for e in named}
        a, b = st.columns(2)
        right_id = a.selectbox(t("comparison.gallery.right"), ids, index=0, format_func=label.get,
                               key="comparison_right")
        wrong_id = b.selectbox(t("comparison.gallery.wrong"), ids, index=1, format_func=label.get,
                               key="comparison_wrong")
        if right_id == wrong_id:
            st.info(t("comparison.gallery.same"))
        else:
            found, total = cmp.right_here_wrong_there(ready[right_id], ready[wrong_id], data.test_labels, limit=16)
            st.caption(t("comparison.gallery.versus_count", n=total, right=label[right_id], wrong=label[wrong_id]))
            show_digits(found, "comparison.gallery.tile_wrong")


def reading() -> None:
    st.write(t("comparison.reading.intro"))
    n_test = len(data.test_labels)
    index = st.number_input(t("comparison.reading.digit"), min_value=0, max_value=n_test - 1, value=0, step=1,
                            key="comparison_digit", help=t("comparison.reading.digit_help", n=n_test))
    image, label = data.test_images[int(index)], int(data.test_labels[int(index)])
    by_model = {}
    for source in all_sources:  # shipped first, so a shipped model wins
        by_model.setdefault(source.model_name, source)
    for name in list_models():
        st.subheader(t(f"comparison.reading.{name}.title", title=model_title(name)))
        source = by_model.get(name)
        model, trained = None, False
        if source is not None:
            try:
                model, trained = model_for(source), True
            except CheckpointError as exc:
                st.error(t("comparison.entry.error", model=source.label, error=exc))
        if model is None:
            model = ui.untrained_model(name)
            st.caption(t("comparison.reading.untrained"))
        left, right = st.columns([2, 3])
        with left:
            key = ("checkpoint", *map(str, stat_key(source.checkpoint))) if trained else ("default", name)
            profile = ui.profile_for(key, model)
            # As an image: st.html's sanitiser drops SVG, an <img> of it draws as is.
            st.image(diagrams.block_diagram_svg(
                profile.layers, profile.parameters, t("comparison.reading.diagram", title=model_title(name)),
                params_word=t("comparison.reading.params_word"), input_word=t("comparison.reading.input_word"),
                extra_word=t("comparison.reading.extra_word")))
        with right:
            st.write(t(f"comparison.reading.{name}.bias"))
            if not trained:
                continue
            labels = {k: t(f"comparison.figure.{k}") for k in (
                "digit", "filter", "belief", "rows_read", "probability", "patches", "attention")}
            labels |= {"true": t("comparison.figure.true"), "guess": t("comparison.figure.guess")}
            if name == "cnn":
                fields = diagrams.receptive_fields(model)
                chart(diagrams.cnn_figure(image, model, labels), key="comparison_bias_cnn")
                st.caption(t("comparison.reading.cnn.caption", kernel=model.config.kernel_size,
                             field=fields[-1]["size"] if fields else model.config.kernel_size,
                             conv_field=[f for f in fields if f["kind"] == "Conv2d"][-1]["size"],
                             filters=model.config.conv_channels[0]))
            elif name == "lstm":
                beliefs = diagrams.row_beliefs(model, image)
                rows_needed = next((r + 1 for r in range(len(beliefs)) if beliefs[r:].argmax(1).tolist()
                                    == [label] * (len(beliefs) - r)), None)
                chart(diagrams.lstm_figure(image, beliefs, label, labels), key="comparison_bias_lstm")
                st.caption(t("comparison.reading.lstm.caption", label=label,
                             rows=rows_needed if rows_needed is not None else "—",
                             hidden=model.config.hidden_size))
            else:
                attention = diagrams.class_token_attention(model, image)
                chart(diagrams.transformer_figure(image, attention, model.config.patch_size, labels),
                                key="comparison_bias_transformer")
                st.caption(t("comparison.reading.transformer.caption", patch=model.config.patch_size,
                             grid=model.config.grid, tokens=model.config.num_patches, depth=model.config.depth))


def scale() -> None:
    st.write(t("comparison.scale.intro", article=t("app.source_article")))
    page_link("lab", t("comparison.scale.lab_link"))
    names = list(scaling.KNOBS)
    name = st.radio(t("comparison.scale.model"), names, horizontal=True, key="comparison_scale_model",
                    index=names.index(scaling.ARTICLE_REFERENCE["model"]), format_func=model_title)
    knobs = scaling.KNOBS[name]
    a, b = st.columns(2)
    width = a.select_slider(t(f"comparison.scale.{name}.width"), options=list(knobs.widths),
                            value=knobs.default_width, key=f"comparison_scale_width_{name}")
    depth = b.select_slider(t(f"comparison.scale.{name}.depth"), options=list(knobs.depths),
                            value=knobs.default_depth, key=f"comparison_scale_depth_{name}")
    with st.spinner(t("comparison.scale.measuring")):
        current = scaling.measure(name, width, depth)
        widths, depths = scaling.width_sweep(name, depth), scaling.depth_sweep(name, width)
        ref = scaling.ARTICLE_REFERENCE
        reference = scaling.measure(ref["model"], ref["width"], ref["depth"])
    cols = st.columns(4)
    # Short values (85.1M, 4.3B, 324.7 MiB): a quarter of a 1280 px page cuts "4,293,422,208" off.
    cols[0].metric(t("comparison.scale.parameters"), format_count_in(current.parameters, lang),
                   help=f"{current.parameters:,}")
    cols[1].metric(t("comparison.scale.macs"), format_count_in(current.macs_per_image, lang),
                   help=f"{current.macs_per_image:,}")
    cols[2].metric(t("comparison.scale.weights"), format_bytes(current.weight_bytes))
    cols[3].metric(t("comparison.scale.training"), format_bytes(current.training_bytes),
                   help=t("comparison.scale.training_help"))
    st.caption(t("comparison.scale.config", config=", ".join(f"{k}={v}" for k, v in current.config.items())))
    labels = {"parameters": t("comparison.scale.parameters"), "macs_per_image": t("comparison.scale.macs"),
              "training_bytes": t("comparison.scale.training_bytes"), "width": t(f"comparison.scale.{name}.width"),
              "depth": t(f"comparison.scale.{name}.depth"), "current": t("comparison.scale.current"),
              "reference": t("comparison.scale.reference")}
    chart(scaling_figures.growth_figure(widths, depths, current, labels,
                                          reference if name == ref["model"] else None),
                    key="comparison_scale_growth")
    st.caption(t("comparison.scale.growth_caption",
                 width_factor=f"{scaling.growth_factor(widths, 'parameters'):,.0f}",
                 depth_factor=f"{scaling.growth_factor(depths, 'parameters'):,.1f}"))
    st.subheader(t("comparison.scale.all_header"))
    with st.spinner(t("comparison.scale.measuring")):
        sweeps = {n: scaling.width_sweep(n, scaling.KNOBS[n].default_depth) for n in names}
    titles = {n: model_title(n) for n in names}
    chart(scaling_figures.architectures_figure(sweeps, titles, labels | {"width": t("comparison.scale.width"),
                                                                           "depth": t("comparison.scale.depth")},
                                                 reference), key="comparison_scale_all")
    st.caption(t("comparison.scale.reference_caption", parameters=f"{reference.parameters:,}",
                 macs=format_count_in(reference.macs_per_image, lang), weights=format_bytes(reference.weight_bytes),
                 training=format_bytes(reference.training_bytes)))


def article() -> None:
    st.write(t("comparison.article.intro", article=t("app.source_article")))
    locations = ui.article_fix_locations()
    outcomes = ui.article_fix_results()
    for fix in FIXES:
        where, outcome = locations[fix.id], outcomes[fix.id]
        with st.container(border=True):
            st.markdown(f"**{t(f'comparison.fix.{fix.id}.title')}**")
            left, right = st.columns(2)
            with left:
                st.caption(t("comparison.article.printed"))
                st.code(fix.article_code, language="python", wrap_lines=True)
                st.write(t(f"comparison.fix.{fix.id}.problem"))
                # The article's code failing is the point of the card: an expected result, not a crash.
                framing = "comparison.article.expected_failure" if outcome.article_failed \
                    else "comparison.article.expected_flaw"
                st.info(t(framing, outcome=outcome.article.text(lang)), icon=":material/science:")
            with right:
                st.caption(t("comparison.article.ours", reference=where.reference))
                st.code(where.dedented, language="python", wrap_lines=True)
                st.write(t(f"comparison.fix.{fix.id}.fix"))
                st.success(t("comparison.article.outcome", outcome=outcome.bigmodels.text(lang)),
                           icon=":material/check_circle:")


{"side": side_by_side, "mistakes": mistakes, "reading": reading, "scale": scale, "article": article}[section]()
