"""Scaling-law lab: how test loss falls with model size, data and compute on
MNIST, the fitted law, its prediction for a larger model, and the measurement."""
import math
import os

import streamlit as st

from bigmodels.reports.scaling_lab import LEVEL, allocate
from bigmodels.analysis.scaling_laws import CHINCHILLA, CHINCHILLA_TOKENS_PER_PARAMETER, PUBLISHED
from bigmodels.app import lab
from bigmodels.app import launcher as lui
from bigmodels.app import operator
from bigmodels.app.charts import chart
from bigmodels.app.live import JOB_POLL_S, LIVE_REFRESH_S
from bigmodels.app.session import language, t
from bigmodels.cluster import control
from bigmodels.data.mnist import ENV_DATA_DIR
from bigmodels.figures import scaling_lab as figures
from bigmodels.base.formatting import format_count_in, format_flops
from bigmodels.base.problems import ConfigError
from bigmodels.runs import sweeps
from bigmodels.runs.store import RunInfoError, StoreError
from bigmodels.train.sweep import (
    DEFAULT_BUDGETS, DEFAULT_CHECK, DEFAULT_DEPTHS, DEFAULT_WIDTHS, check_point, sweep_grid,
)

LEVEL_TEXT = f"{LEVEL:.0%}"  # the intervals' central share, as the texts say it




# ---------------------------------------------------------------- choosing
def choose_sweep(store) -> lab.Loaded:
    names = [p.name for p in sweeps.list_sweeps(store)] if store is not None else []
    options = [lab.SHIPPED, *names, lab.UPLOAD]
    choice = st.selectbox(t("lab.choose"), options, key="lab_sweep", help=t("lab.choose_help"),
                          format_func=lambda o: {lab.SHIPPED: t("lab.choose.shipped"),
                                                 lab.UPLOAD: t("lab.choose.upload")}.get(o, t("lab.choose.own", name=o)))
    if choice == lab.SHIPPED:
        return lab.shipped()
    if choice == lab.UPLOAD:
        file = st.file_uploader(t("lab.upload"), type=["json"], key="lab_upload", help=t("lab.upload_help"),
                                max_upload_size=5)
        if file is None:
            return lab.Loaded()
        return lab.uploaded(file.getvalue())
    return lab.from_store(store, choice)


def provenance(table) -> None:
    meta = table.meta
    where = meta.get("provenance") or {}
    text = t("lab.provenance", points=len(table.rows), data=meta.get("data") or "–",
             devices=", ".join(where.get("devices") or []) or "–",
             commits=", ".join(where.get("git_commits") or []) or "–", exported=meta.get("exported_at") or "–")
    if table.shipped:
        st.caption(":material/verified: " + t("lab.shipped_badge"))
    with st.expander(t("lab.provenance_title")):
        st.caption(text)
        commands = meta.get("commands") or []
        if commands:
            st.code("\n".join(commands), language="bash", wrap_lines=True)
    if table.not_measured:
        st.caption(t("lab.not_measured", counts=", ".join(f"{n} {s}" for s, n in sorted(table.not_measured.items()))))


# ------------------------------------------------------------------ fits
def interval_text(value: float, interval, short: bool = False) -> str:
    return t("lab.interval_short" if short else "lab.interval", value=f"{value:.3g}", low=f"{interval.low:.3g}",
             high=f"{interval.high:.3g}", level=LEVEL_TEXT)


def fit_summary(result) -> None:
    fit, iv = result.fit, result.intervals
    st.latex(r"L(N, D) = E + \frac{A}{N^{\alpha}} + \frac{B}{D^{\beta}}")
    cols = st.columns(5)
    for col, name, label in zip(cols, ("E", "A", "alpha", "B", "beta"), ("E", "A", "α", "B", "β")):
        col.metric(label, f"{getattr(fit, name):.3g}", help=interval_text(getattr(fit, name), iv[name]))
    st.caption(t("lab.fit_caption", runs=result.grid_runs, samples=len(result.bootstrap),
                 alpha=interval_text(fit.alpha, iv["alpha"]), beta=interval_text(fit.beta, iv["beta"]),
                 e=interval_text(fit.E, iv["E"]), level=LEVEL_TEXT))


def figure_labels() -> dict[str, str]:
    keys = ("budget", "point", "point_budget", "loss", "parameters", "compute", "runs", "frontier", "fit_c",
            "fit_optimal", "predicted", "measured", "check_name")
    return {k: t(f"lab.fig.{k}") for k in keys}


def charts(table, result, lang) -> None:
    labels = figure_labels()
    left, right = st.columns(2)
    with left:
        st.markdown(f"**{t('lab.fig.by_parameters')}**")
        chart(figures.loss_vs_parameters(table, result, labels, lang), key="lab_fig_n")
        power = result.loss_vs_parameters
        st.caption(t("lab.law_n", images=format_count_in(result.largest_budget, lang), e=f"{power.E:.3g}",
                     a=f"{power.A:.3g}", alpha=f"{power.alpha:.3f}"))
    with right:
        st.markdown(f"**{t('lab.fig.by_compute')}**")
        chart(figures.loss_vs_compute(table, result, labels, lang), key="lab_fig_c")
        power = result.loss_vs_compute
        st.caption(t("lab.law_c", n=len(result.frontier), e=f"{power.E:.3g}", a=f"{power.A:.3g}",
                     alpha=f"{power.alpha:.3f}"))


def allocation(table, result, lang) -> None:
    st.subheader(t("lab.alloc.title"))
    computes = [r.compute for r in table.rows]
    low, high = math.floor(math.log10(min(computes))), math.ceil(math.log10(max(computes))) + 2
    exponent = st.slider(t("lab.alloc.budget"), float(low), float(high), float(round(math.log10(max(computes)), 1)),
                         0.1, key="lab_alloc_exponent", help=t("lab.alloc.budget_help"),
                         format="10^%.1f")
    best = allocate(result, 10.0 ** exponent)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric(t("lab.alloc.compute"), format_flops(best.compute))
    c2.metric(t("lab.alloc.parameters"), format_count_in(best.parameters, lang),
              help=t("lab.alloc.range", low=format_count_in(best.parameters_interval.low, lang),
                     high=format_count_in(best.parameters_interval.high, lang), level=LEVEL_TEXT))
    c3.metric(t("lab.alloc.images"), format_count_in(best.images, lang),
              help=t("lab.alloc.range", low=format_count_in(best.images_interval.low, lang),
                     high=format_count_in(best.images_interval.high, lang), level=LEVEL_TEXT))
    c4.metric(t("lab.alloc.ratio"), f"{best.images_per_parameter:.3g}")
    st.caption(t("lab.alloc.caption", k=f"{result.flops.coefficient:.3g}", p=f"{result.flops.exponent:.2f}",
                 loss=f"{best.loss:.3g}", max_images=format_count_in(max(r.images for r in table.rows), lang)))


def published(table, result) -> None:
    st.subheader(t("lab.published.title"))
    rows = [{t("lab.published.col.source"): t("lab.published.this"),
             "α (N)": interval_text(result.fit.alpha, result.intervals["alpha"], short=True),
             "β (D)": interval_text(result.fit.beta, result.intervals["beta"], short=True),
             t("lab.published.col.unit"): t("lab.published.images")}]
    for law in PUBLISHED:
        rows.append({t("lab.published.col.source"): law.source_title.split(",")[0], "α (N)": f"{law.alpha:g}",
                     "β (D)": f"{law.beta:g}", t("lab.published.col.unit"): t("lab.published.tokens")})
    st.dataframe(rows, hide_index=True, width="stretch")
    st.markdown(" · ".join(f"[{law.source_title}]({law.source_url})" for law in PUBLISHED))
    st.caption(t("lab.published.note", ratio=CHINCHILLA_TOKENS_PER_PARAMETER, e=f"{CHINCHILLA.E:g}"))
    st.markdown(t("lab.differ", e=f"{result.fit.E:.3g}", best=f"{min(r.test_loss for r in table.rows):.3g}",
                  alpha=f"{result.fit.alpha:.2f}", beta=f"{result.fit.beta:.2f}"))


def checks(table, result, lang) -> None:
    st.subheader(t("lab.check.title"))
    if not result.checks:
        st.info(t("lab.check.none"))
        return
    st.write(t("lab.check.intro", runs=result.grid_runs, level=LEVEL_TEXT))
    chart(figures.check_figure(result, figure_labels(), lang), key="lab_fig_check")
    for check in result.checks:
        verdict = "inside" if check.inside else "outside"
        icon = ":material/check_circle:" if check.inside else ":material/cancel:"  # not in the catalogue text
        st.markdown(icon + " " + t(f"lab.check.{verdict}", parameters=format_count_in(check.row.parameters, lang),
                      images=format_count_in(check.row.images, lang), predicted=f"{check.predicted:.4f}",
                      low=f"{check.interval.low:.4f}", high=f"{check.interval.high:.4f}",
                      measured=f"{check.row.test_loss:.4f}", error=f"{check.error:+.0%}", run=check.row.run_id))
        same_budget = [r for r in table.grid().rows if r.images == check.row.images]
        if same_budget:
            best = min(same_budget, key=lambda r: r.test_loss)
            st.caption(t("lab.check.best_grid", images=format_count_in(check.row.images, lang),
                         parameters=format_count_in(best.parameters, lang), width=best.width, depth=best.depth,
                         loss=f"{best.test_loss:.4f}", largest=format_count_in(max(r.parameters for r in same_budget),
                                                                               lang)))


# ------------------------------------------------------------ own sweeps
def launch_form(store, allowed: bool) -> None:
    model = "cnn"
    with st.form("lab_launch"):
        c1, c2 = st.columns(2)
        name = c1.text_input(t("lab.launch.name"), max_chars=sweeps.MAX_NAME, help=t("lab.launch.name_help"))
        widths = c2.text_input(t("lab.launch.widths"), ", ".join(map(str, DEFAULT_WIDTHS[model])))
        c3, c4, c5 = st.columns(3)
        depths = c3.text_input(t("lab.launch.depths"), ", ".join(map(str, DEFAULT_DEPTHS[model])))
        budgets = c4.text_input(t("lab.launch.budgets"), ", ".join(map(str, DEFAULT_BUDGETS)))
        check_width = c5.number_input(t("lab.launch.check_width"), 0, 256, DEFAULT_CHECK[model]["width"],
                                      help=t("lab.launch.check_help"))
        submitted = st.form_submit_button(t("lab.launch.submit"), disabled=not allowed)
    if not submitted:
        return
    if not operator.guard():
        return
    try:
        numbers = {k: parse_numbers(v, k) for k, v in (("widths", widths), ("depths", depths), ("budgets", budgets))}
        sweeps.check_name(name.strip())
        points = sweep_grid(model, **numbers)
        if check_width:
            points.append(check_point(model, width=int(check_width)))
        runs = sweeps.queue_sweep(store, name.strip(), points, note=t("lab.launch.note"))
        control.ensure_dispatcher(store, runs, os.environ.get(ENV_DATA_DIR))
    except ConfigError as exc:
        for message in exc.messages(language()):
            st.error(message)
        return
    except (RunInfoError, StoreError) as exc:
        st.error(t("launcher.store.unreadable", error=exc))
        return
    st.success(t("lab.launch.queued", n=len(runs), name=name.strip()))


def parse_numbers(text: str, field: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.replace("，", ",").split(",") if p.strip()]
    if not parts or not all(p.isdigit() for p in parts):
        raise ConfigError([t("lab.problem.numbers", field=t(f"lab.launch.{field}"), got=text[:60])])
    return tuple(int(p) for p in parts)


def own_sweeps(store, allowed: bool) -> None:
    found = sweeps.list_sweeps(store)
    if not found:
        st.caption(t("lab.own.none"))
        return
    for p in found:
        c1, c2, c3, c4 = st.columns([3, 3, 1, 1])
        c1.markdown(f"**{p.name}**")
        c2.progress(p.succeeded / p.total if p.total else 0.0,
                    text=t("lab.own.progress", done=p.succeeded, total=p.total, active=p.active, stopped=p.resumable))
        if c3.button(t("lab.own.cancel"), key=f"lab_cancel_{p.name}", disabled=not allowed or not p.active):
            if operator.guard():
                sweeps.cancel_sweep(store, p.name)
                st.rerun()
        if c4.button(t("lab.own.resume"), key=f"lab_resume_{p.name}", disabled=not allowed or not p.resumable):
            if operator.guard():
                sweeps.resume_sweep(store, p.name)
                control.ensure_dispatcher(store, sweeps.sweep_runs(store, p.name), os.environ.get(ENV_DATA_DIR))
                st.rerun()


def run_your_own(store) -> None:
    st.divider()
    st.header(t("lab.own.title"))
    st.write(t("lab.own.intro"))
    if store is None:
        return
    allowed = operator.access_panel("lab.access.what")
    launch_form(store, allowed)
    st.fragment(own_sweeps, run_every=LIVE_REFRESH_S)(store, allowed)


# ------------------------------------------------------------------ page
def wait_for_fits(table) -> None:
    """Shown while the fits run in the background; reruns the page once they are done."""
    if not lab.analysis(table).busy:
        st.rerun()
    st.info(t("lab.fitting", runs=len(table.rows)))


def main() -> None:
    lang = language()
    st.title(t("lab.title"))
    st.write(t("lab.intro", article=t("app.source_article")))
    store, store_problem = lui.open_store()
    if store_problem:
        st.error(t("launcher.store.unreadable", error=store_problem))
    loaded = choose_sweep(store)
    if loaded.problem is not None:
        st.error(t("lab.unusable", problem=loaded.problem.text(lang)))
    elif loaded.table is not None:
        provenance(loaded.table)
        state = lab.analysis(loaded.table)
        if state.busy:
            st.fragment(wait_for_fits, run_every=JOB_POLL_S)(loaded.table)
        elif state.problem is not None:
            st.warning(t("lab.unusable", problem=state.problem.text(lang)))
        else:
            result = state.result
            fit_summary(result)
            charts(loaded.table, result, lang)
            allocation(loaded.table, result, lang)
            checks(loaded.table, result, lang)
            published(loaded.table, result)
    run_your_own(store)


main()
