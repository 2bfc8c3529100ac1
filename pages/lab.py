"""Scaling-law lab: how test loss falls with model size, data and compute on
MNIST, the fitted law, its prediction for a larger model, and the measurement."""
import math
import os

import streamlit as st

from bigmodels.reports.scaling_lab import LEVEL, TARGET_ERROR, allocate
from bigmodels.analysis.scaling_laws import (
    BESIROGLU, BESIROGLU_SOURCE, CHINCHILLA, CHINCHILLA_TOKENS_PER_PARAMETER, PUBLISHED,
)
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
    CHECK_BOUNDS, DEFAULT_BUDGETS, DEFAULT_CHECK, DEFAULT_DEPTHS, DEFAULT_WIDTHS, MAX_SEEDS, SEEDS, sweep_grid,
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
    keys = ("budget", "point", "point_budget", "point_seeds", "loss", "parameters", "compute", "runs", "frontier",
            "fit_c", "fit_optimal", "predicted", "measured", "check_name", "local_line", "local_law", "local_axis",
            "isoflop_line", "isoflop_min", "lr_size", "lr_axis", "lr_loss")
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
    constants(result)
    st.markdown(t("lab.differ", e=f"{result.fit.E:.3g}", best=f"{min(r.test_loss for r in table.rows):.3g}",
                  alpha=f"{result.fit.alpha:.2f}", beta=f"{result.fit.beta:.2f}"))


def constants(result) -> None:
    """Chinchilla's published constants beside Besiroglu et al.'s refit and this sweep's."""
    st.markdown(f"**{t('lab.constants.title')}**")
    fits = ((t("lab.constants.chinchilla"), CHINCHILLA), (t("lab.constants.besiroglu"), BESIROGLU),
            (t("lab.published.this"), result.fit))
    st.dataframe([{t("lab.published.col.source"): name, "E": f"{f.E:.5g}", "A": f"{f.A:.5g}", "B": f"{f.B:.6g}",
                   "α": f"{f.alpha:.4g}", "β": f"{f.beta:.4g}", "a = β/(α+β)": f"{f.data_share:.3f}"}
                  for name, f in fits], hide_index=True, width="stretch")
    st.caption(t("lab.constants.caption", title=BESIROGLU_SOURCE[0], url=BESIROGLU_SOURCE[1]))


def lr_section(table) -> None:
    """Each size's learning rate, from the search on held-out training images."""
    st.subheader(t("lab.lr.title"))
    search = lab.search_of(table)
    if search is None:
        st.info(t("lab.lr.none"))
        return
    rule = search.rule()
    rates = sorted({p.lr for p in lab_points(table) if p.lr})
    st.write(t("lab.lr.intro", budget=format_count_in(search.budget, language()),
               holdout=format_count_in(search.holdout, language()), n=len(search.trials),
               lrs=", ".join(f"{v:g}" for v in sorted({tr.lr for tr in search.trials}))))
    chart(figures.lr_search_figure(search.trials, rule, figure_labels(), language()), key="lab_fig_lr")
    st.caption(t("lab.lr.rule", c=f"{rule.coefficient:.3g}", k=f"{rule.exponent:.3f}", low=f"{rule.low:g}",
                 high=f"{rule.high:g}", used=", ".join(f"{v:g}" for v in rates) or "–"))


def lab_points(table):
    return table.grid().rows


def approaches(result, lang) -> None:
    """Approach 2 (IsoFLOP parabolas) beside Approach 3 (the parametric fit)."""
    st.subheader(t("lab.a2.title"))
    a2 = result.approach2
    left, right = st.columns(2)
    with left:
        st.markdown(f"**{t('lab.a2.figure')}**")
        if a2 is None or not a2.profiles:
            st.info(t("lab.a2.none"))
        else:
            chart(figures.isoflop_figure(result, figure_labels(), lang), key="lab_fig_isoflop")
            if a2.exponent is None:
                st.caption(t("lab.a2.few", n=len(a2.profiles)))
    with right:
        st.markdown(f"**{t('lab.local.figure')}**")
        chart(figures.local_exponent_figure(result, figure_labels(), lang), key="lab_fig_local")
        st.caption(t("lab.local.caption", alpha=f"{result.fit.alpha:.2f}"))
    st.dataframe([{t("lab.a2.col.method"): t("lab.a2.approach2"),
                   t("lab.a2.col.exponent"): "–" if a2 is None or a2.exponent is None else f"{a2.exponent:.2f}",
                   t("lab.a2.col.from"): t("lab.a2.from_budgets", n=0 if a2 is None else len(a2.profiles))},
                  {t("lab.a2.col.method"): t("lab.a2.approach3"),
                   t("lab.a2.col.exponent"): "–" if a2 is None or a2.approach3_exponent is None
                   else f"{a2.approach3_exponent:.2f}",
                   t("lab.a2.col.from"): t("lab.a2.from_points", n=len(result.points))}],
                 hide_index=True, width="stretch")
    st.caption(t("lab.a2.bias"))


def flops_table(result, lang) -> None:
    st.markdown(f"**{t('lab.flops.title')}**")
    st.dataframe([{t("lab.flops.col.parameters"): format_count_in(r.parameters, lang),
                   t("lab.flops.col.measured"): format_flops(r.flops_per_image),
                   t("lab.flops.col.six_n"): format_flops(6 * r.parameters),
                   t("lab.flops.col.ratio"): f"{r.ratio:.1f}"} for r in result.flops_table],
                 hide_index=True, width="stretch", height=240)
    st.caption(t("lab.flops.caption", k=f"{result.flops.coefficient:.3g}", p=f"{result.flops.exponent:.2f}"))


def checks(table, result, lang, store) -> None:
    st.subheader(t("lab.check.title"))
    st.write(t("lab.check.intro", runs=result.grid_runs, level=LEVEL_TEXT, target=f"{TARGET_ERROR:.0%}"))
    if not result.checks:
        st.info(t("lab.check.none"))
        return
    scores, times = [], []
    for c in result.checks:
        verdict = ("lab.check.pending" if c.measured is None else "lab.check.in" if c.inside else "lab.check.out")
        name = t("lab.check.short", width=c.width, depth=c.depth, images=format_count_in(c.images, lang))
        scores.append({t("lab.check.col.check"): name,
                       t("lab.check.col.predicted"): f"{c.predicted:.4f} ({c.low:.4f}–{c.high:.4f})",
                       t("lab.check.col.measured"): "–" if c.measured is None else
                       t("lab.check.measured", value=f"{c.measured:.4f}", n=c.measured_runs),
                       t("lab.check.col.verdict"): t(verdict),
                       t("lab.check.col.error"): "–" if c.error is None else f"{c.error:+.1%}"})
        times.append({t("lab.check.col.check"): name, t("lab.check.col.id"): c.id,
                      t("lab.check.col.registered"): c.registered_at,
                      t("lab.check.col.started"): c.started_at or t("lab.check.not_started"),
                      t("lab.check.col.frozen"): "–" if c.intact is None or c.registered_first is None else
                      t("lab.check.frozen_yes" if c.intact and c.registered_first else "lab.check.frozen_no")})
    st.dataframe(scores, hide_index=True, width="stretch")
    st.dataframe(times, hide_index=True, width="stretch")
    chart(figures.check_figure(result, figure_labels(), lang), key="lab_fig_check")
    for c in result.checks:
        if c.measured is None:
            continue
        held = c.inside and abs(c.error) <= TARGET_ERROR
        icon = ":material/check_circle:" if held else ":material/cancel:"  # not in the catalogue text
        st.markdown(icon + " " + t("lab.check.held" if held else "lab.check.missed", name=check_name(c, lang),
                                   predicted=f"{c.predicted:.4f}", low=f"{c.low:.4f}", high=f"{c.high:.4f}",
                                   measured=f"{c.measured:.4f}", error=f"{c.error:+.1%}",
                                   target=f"{TARGET_ERROR:.0%}"))
        if not held:
            evidence(c, result, lang)
    if store is not None and not table.shipped:
        st.fragment(live_checks, run_every=LIVE_REFRESH_S)(store, [r for c in result.checks if c.measured is None
                                                                   for r in c.runs])


def check_name(c, lang) -> str:
    return t("lab.check.name", width=c.width, depth=c.depth, parameters=format_count_in(c.parameters, lang),
             images=format_count_in(c.images, lang), seeds=c.seeds)


def evidence(c, result, lang) -> None:
    """Why a check missed, from the grid itself: how far the widest grid models of its depth,
    at the largest budget it reaches, lie from the fitted law."""
    budgets = [b for b in {p.images for p in result.points} if b <= c.images]
    if not budgets:
        return
    budget = max(budgets)
    mine = sorted(((p, r) for p, r in zip(result.points, result.residuals)
                   if p.images == budget and p.depth == c.depth), key=lambda pr: pr[0].parameters)[-3:]
    others = [r for p, r in zip(result.points, result.residuals) if p.images == budget and p.depth != c.depth]
    if not mine:
        return
    off = [math.expm1(r) for _, r in mine]
    st.caption(t("lab.check.evidence", images=format_count_in(budget, lang), depth=c.depth, n=len(mine),
                 low=f"{min(off):+.0%}", high=f"{max(off):+.0%}",
                 others=f"{math.expm1(sum(others) / len(others)):+.0%}" if others else "–"))


def live_checks(store, run_ids) -> None:
    """The runs of registered checks still training, as they train."""
    runs = [r for r in (store.get(i) for i in run_ids) if r is not None and r.is_active]
    for run in runs:
        st.progress(run.progress, text=t("lab.check.live", run=run.id, status=t(f"launcher.status.{run.status}"),
                                          percent=f"{run.progress:.0%}"))


def register_form(store, table, result, allowed: bool) -> None:
    """Operators register their own check on a sweep of this store."""
    st.markdown(f"**{t('lab.register.title')}**")
    st.caption(t("lab.register.intro"))
    bounds = CHECK_BOUNDS
    default = DEFAULT_CHECK["cnn"]
    with st.form("lab_register"):
        c1, c2, c3, c4 = st.columns(4)
        width = c1.number_input(t("lab.register.width"), *bounds["width"], default["width"])
        depth = c2.number_input(t("lab.register.depth"), *bounds["depth"], default["depth"])
        budget = c3.number_input(t("lab.register.budget"), *bounds["budget"], default["budget"], step=1000)
        seeds = c4.number_input(t("lab.register.seeds"), 1, MAX_SEEDS, SEEDS)
        submitted = st.form_submit_button(t("lab.register.submit"), disabled=not allowed)
    if not submitted or not operator.guard():
        return
    try:
        prediction, runs = lab.register(store, table, result, int(width), int(depth), int(budget), int(seeds),
                                        t("lab.launch.note"))
    except ConfigError as exc:
        for message in exc.messages(language()):
            st.error(message)
        return
    except (RunInfoError, StoreError) as exc:
        st.error(t("launcher.store.unreadable", error=exc))
        return
    low, high = prediction.payload["interval"]
    st.success(t("lab.register.done", id=prediction.id, predicted=f"{prediction.payload['predicted']:.4f}",
                 low=f"{low:.4f}", high=f"{high:.4f}", n=len(runs)))


# ------------------------------------------------------------ own sweeps
def launch_form(store, allowed: bool) -> None:
    model = "cnn"
    with st.form("lab_launch"):
        c1, c2 = st.columns(2)
        name = c1.text_input(t("lab.launch.name"), max_chars=sweeps.MAX_NAME, help=t("lab.launch.name_help"))
        widths = c2.text_input(t("lab.launch.widths"), ", ".join(map(str, DEFAULT_WIDTHS[model])))
        c3, c4 = st.columns(2)
        depths = c3.text_input(t("lab.launch.depths"), ", ".join(map(str, DEFAULT_DEPTHS[model])))
        budgets = c4.text_input(t("lab.launch.budgets"), ", ".join(map(str, DEFAULT_BUDGETS)))
        submitted = st.form_submit_button(t("lab.launch.submit"), disabled=not allowed)
    if not submitted:
        return
    if not operator.guard():
        return
    try:
        numbers = {k: parse_numbers(v, k) for k, v in (("widths", widths), ("depths", depths), ("budgets", budgets))}
        sweeps.check_name(name.strip())
        points = sweep_grid(model, lr_rule=lab.shipped_rule(model), **numbers)
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
            checks(loaded.table, result, lang, store)
            if store is not None and not loaded.table.shipped and loaded.table.name in {
                    p.name for p in sweeps.list_sweeps(store)}:
                register_form(store, loaded.table, result, operator.may_change())
            fit_summary(result)
            charts(loaded.table, result, lang)
            lr_section(loaded.table)
            approaches(result, lang)
            allocation(loaded.table, result, lang)
            flops_table(result, lang)
            published(loaded.table, result)
    run_your_own(store)


main()
