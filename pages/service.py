"""Model as a service: the trained models behind an HTTP API, and the service
watched while it works -- deploy a model, set replicas and batching, drive it
with the load generator, read the live charts, hand out API keys.

A thin view: the service itself is ``bigmodels.serving`` (Ray Serve); slow
steps (start, deploy, a load run) run in background threads
(``bigmodels.app.service``) and the page polls them.
"""
import os
import time

import streamlit as st
import torch

from bigmodels.analysis import calculators as calc
from bigmodels.app import service as sui
from bigmodels.app import operator
from bigmodels.app.charts import chart
from bigmodels.app.live import JOB_POLL_S, LIVE_REFRESH_S
from bigmodels.app.routing import page_link
from bigmodels.app.session import current_data, language, t
from bigmodels.cluster.runtime import ClusterError
from bigmodels.data.digits import from_uint8
from bigmodels.data.mnist import DataError
from bigmodels.figures.service import (
    batch_figure, errors_figure, key_rows, latency_figure, load_run_label, load_runs_figure, throughput_figure,
)
from bigmodels.runs.sources import list_sources
from bigmodels.base.problems import ConfigError
from bigmodels.serving import client, service
from bigmodels.serving.loadgen import LoadError, LoadPlan, run_load
from bigmodels.serving.settings import (
    BATCH_WAIT_MS, DEFAULT_BURST, DEFAULT_QUOTA_IMAGES, DEFAULT_RATE_PER_S, LOAD_BATCH, LOAD_CONCURRENCY,
    LOAD_DURATION_S, LOAD_MODES, LOAD_RATE, MAX_BATCH, MAX_KEY_NAME, MAX_RATE_PER_S, REPLICAS, DeploySettings,
)
from bigmodels.serving.snippets import curl_snippet, python_snippet
from bigmodels.serving.store import KeyRequestError, ServiceStore, ServiceStoreError

WINDOW_S = 60
PLOT_CONFIG = {"displayModeBar": False}




def problem_text(exc: Exception) -> str:
    """A failed step in the user's language: known reasons by key, anything else as its one line."""
    reason = getattr(exc, "reason", None)
    values = getattr(exc, "values", {}) or {}
    key = f"service.problem.{reason}"
    try:
        return t(key, **values)
    except (KeyError, IndexError, ValueError):
        return t("service.problem.other", detail=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def job_notice(name: str, running_key: str) -> bool:
    """The state of a background step; True while it runs. While it runs its notice
    counts the seconds by itself, and the whole page is drawn again when it ends: a
    presenter never has to reload to see the service up or a model deployed."""
    job = sui.job(name)
    if job is None:
        return False
    if not job.done:
        st.fragment(job_progress, run_every=JOB_POLL_S)(name, running_key)
        return True
    if job.error is not None:
        st.error(problem_text(job.error))
    return False


def job_progress(name: str, running_key: str) -> None:
    job = sui.job(name)
    if job is None or job.done:
        st.rerun()  # from a fragment: the whole page, now in its new state
    st.info(t(running_key, seconds=f"{job.seconds:.0f}"))


# ----------------------------------------------------------------- start
def start_section(allowed: bool) -> None:
    st.info(t("service.start.not_running"))
    if job_notice("start", "service.start.starting"):
        return
    if st.button(t("service.start.button"), type="primary", disabled=not allowed, key="svc_start"):
        if operator.guard():
            sui.start_job("start", lambda: service.start())
            st.rerun()


# ----------------------------------------------------------------- deployments
def deploy_form(allowed: bool) -> None:
    sources = {s.id: s for s in list_sources(language()) if s.origin != "live"}  # finished weights only
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    with st.form("svc_deploy", border=True):
        st.markdown(f"**{t('service.deploy.title')}**")
        chosen = st.selectbox(t("service.deploy.source"), list(sources), format_func=lambda i: sources[i].label)
        a, b, c, d = st.columns(4)
        replicas = a.number_input(t("service.deploy.replicas"), int(REPLICAS.low), int(REPLICAS.high),
                                  int(REPLICAS.default), help=t("service.deploy.replicas_help"))
        batch = b.number_input(t("service.deploy.max_batch"), int(MAX_BATCH.low), int(MAX_BATCH.high),
                               int(MAX_BATCH.default), help=t("service.deploy.max_batch_help"))
        wait = c.number_input(t("service.deploy.wait_ms"), float(BATCH_WAIT_MS.low), float(BATCH_WAIT_MS.high),
                              float(BATCH_WAIT_MS.default), step=1.0, help=t("service.deploy.wait_help"))
        device = d.selectbox(t("service.deploy.device"), devices)
        autoscale = st.checkbox(t("service.deploy.autoscale"), help=t("service.deploy.autoscale_help"))
        submitted = st.form_submit_button(t("service.deploy.button"), type="primary", disabled=not allowed)
    if not submitted:
        return
    if not operator.guard():
        return
    settings = DeploySettings(int(replicas), int(batch), float(wait), bool(autoscale), device)
    problems = settings.problems()
    if problems or chosen not in sources:
        st.error(problem_text(service.ServiceError(problems[0][0], **problems[0][1])) if problems
                 else t("service.deploy.no_source"))
        return
    source = sources[chosen]
    if sui.start_job("deploy", lambda: service.deploy(source, settings)):
        st.rerun()
    st.warning(t("service.deploy.busy"))


def deployments_section(allowed: bool) -> list:
    st.subheader(t("service.deployments.title"))
    job_notice("deploy", "service.deploy.deploying")
    try:
        found = service.statuses()
    except (ServiceStoreError, ClusterError) as exc:
        st.error(problem_text(exc))
        found = []
    if not found:
        st.caption(t("service.deployments.none"))
    for status in found:
        d = status.deployment
        with st.container(border=True, horizontal=True, vertical_alignment="center"):
            accuracy = "?" if d.accuracy is None else f"{d.accuracy:.2%}"
            target = f"1–{d.settings.replicas}" if d.settings.autoscale else str(d.settings.replicas)
            st.markdown(t("service.deployments.row", id=d.model_id, source=d.source_id, version=d.version,
                          accuracy=accuracy, running=status.running_replicas, target=target, device=d.settings.device,
                          batch=d.settings.max_batch_size, wait=f"{d.settings.batch_wait_ms:g}",
                          status=t(f"service.status.{status.status.lower()}") if status.status.lower() in
                          ("running", "deploying", "unhealthy", "missing", "deleting") else status.status))
            if st.button(t("service.deployments.undeploy"), key=f"svc_undeploy_{d.model_id}", disabled=not allowed):
                if operator.guard():
                    service.undeploy(d.model_id)
                    st.rerun()
    deploy_form(allowed)
    return found


# ----------------------------------------------------------------- live charts
def milliseconds(value: float) -> str:
    """A latency with three significant digits, so a fifth of the page's width holds it
    ("951 ms", "95.1 ms", "9.51 ms"; "950.7 ms" was cut off)."""
    return f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms" if value >= 10 else f"{value:.2f} ms"


def live_charts(model_ids: list[str]) -> None:
    labels = {k: t(f"service.chart.{k}") for k in (
        "rps", "throughput_title", "seconds_ago", "latency_title", "ms", "batch_title", "batch_size", "requests",
        "errors_title", "status")}
    chosen = st.session_state.get("svc_chart_model", "")
    try:
        summary = service.metrics(window_s=WINDOW_S, model=chosen or None)
        replicas = {s.deployment.model_id: s.running_replicas for s in service.statuses()}
    except Exception as exc:  # the gateway restarting, the cluster gone: say so, keep polling
        st.warning(problem_text(service.ServiceError("metrics_unavailable", detail=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)))
        return
    recent = summary.requests_per_s[-10:]
    cells = st.columns(5)
    cells[0].metric(t("service.live.rps"), f"{sum(recent) / max(1, len(recent)):.1f}")
    for cell, name in zip(cells[1:4], ("p50_ms", "p95_ms", "p99_ms")):
        value = summary.overall[name]
        cell.metric(t(f"service.live.{name}"), "–" if value is None else milliseconds(value))
    shown = replicas.get(chosen) if chosen else sum(replicas.values())
    cells[4].metric(t("service.live.replicas"), "–" if shown is None else str(shown))
    if not summary.total:  # no axes drawn around nothing: say what would fill them
        st.info(t("service.live.no_requests", window=WINDOW_S))
        return
    left, right = st.columns(2)
    with left:
        chart(throughput_figure(summary, labels), config=PLOT_CONFIG, key="svc_fig_rps")
    with right:
        chart(latency_figure(summary, labels), config=PLOT_CONFIG, key="svc_fig_latency")
    left, right = st.columns(2)
    with left:
        chart(batch_figure(summary, labels), config=PLOT_CONFIG, key="svc_fig_batch")
    with right:
        if summary.errors:
            chart(errors_figure(summary, labels), config=PLOT_CONFIG, key="svc_fig_errors")
        else:
            st.markdown(f"**{labels['errors_title']}**")
            st.caption(t("service.live.no_errors", window=WINDOW_S))
    st.caption(t("service.live.caption", window=WINDOW_S, total=summary.total, ok=summary.ok, seconds=LIVE_REFRESH_S))


def live_section(model_ids: list[str]) -> None:
    st.subheader(t("service.live.title"))
    options = [""] + model_ids
    st.segmented_control(t("service.live.model"), options, key="svc_chart_model", default="",
                         format_func=lambda m: m or t("service.live.all"))
    st.fragment(live_charts, run_every=LIVE_REFRESH_S)(model_ids)


# ----------------------------------------------------------------- load generator
def sample_digits(count: int) -> torch.Tensor | None:
    """The first ``count`` MNIST test digits: real digits for the load generator."""
    try:
        data, _ = current_data()
    except DataError:
        return None
    if data is None or len(data.test_labels) < count:
        return None
    return from_uint8(data.test_images[:count])


def load_status() -> None:
    name = f"load-{sui.session_id()}"
    job = sui.job(name)
    if job is None:
        return
    if not job.done:
        st.info(t("service.load.running", seconds=f"{job.seconds:.0f}"))
        return
    if job.error is not None:
        st.error(problem_text(job.error))
    else:
        described, report = job.result
        ServiceStore().add_load_run({**described, **report.summary(), "at": time.time()})
    sui.forget_job(name)
    st.rerun()  # the whole page: the runs table and the cost line take the new numbers


def load_section(found: list, allowed: bool) -> None:
    st.subheader(t("service.load.title"))
    st.caption(t("service.load.intro"))
    deployed = {s.deployment.model_id: s.deployment for s in found}
    if not deployed:
        st.caption(t("service.load.nothing"))
        return
    with st.form("svc_load", border=True):
        a, b, c = st.columns(3)
        model_id = a.selectbox(t("service.load.model"), list(deployed))
        mode = b.selectbox(t("service.load.mode"), LOAD_MODES, format_func=lambda m: t(f"service.load.mode.{m}"),
                           help=t("service.load.mode_help"))
        concurrency = c.number_input(t("service.load.concurrency"), int(LOAD_CONCURRENCY.low), int(LOAD_CONCURRENCY.high),
                                     int(LOAD_CONCURRENCY.default), help=t("service.load.concurrency_help"))
        a, b, c = st.columns(3)
        duration = a.number_input(t("service.load.duration"), float(LOAD_DURATION_S.low), float(LOAD_DURATION_S.high),
                                  float(LOAD_DURATION_S.default))
        images = b.number_input(t("service.load.images"), int(LOAD_BATCH.low), int(LOAD_BATCH.high), int(LOAD_BATCH.default))
        rate = c.number_input(t("service.load.rate"), float(LOAD_RATE.low), float(LOAD_RATE.high), float(LOAD_RATE.default),
                              help=t("service.load.rate_help"))
        submitted = st.form_submit_button(t("service.load.button"), type="primary", disabled=not allowed)
    if submitted:
        if operator.guard():
            digits = sample_digits(int(images))
            url = service.base_url()
            if digits is None or url is None:
                st.error(t("service.load.no_digits") if digits is None else t("service.start.not_running"))
            else:
                offered = float(rate) if mode == "rate" else None
                plan = LoadPlan(client.predict_url(url, model_id), sui.app_key(),
                                client.pixels_json(digits if int(images) > 1 else digits[0]), rate=offered,
                                duration_s=float(duration), concurrency=int(concurrency),
                                images_per_request=int(images))
                try:
                    plan.check()
                except LoadError as exc:
                    st.error(problem_text(exc))
                else:
                    label = load_run_label(model_id, deployed[model_id].settings.to_dict(), int(images),
                                           int(concurrency), offered)
                    sui.start_job(f"load-{sui.session_id()}",
                                  lambda: ({"label": label, "rate": offered, "concurrency": int(concurrency)},
                                           run_load(plan)))
    st.fragment(load_status, run_every=JOB_POLL_S)()
    runs = ServiceStore().load_runs()
    if runs:
        headings = {k: t(f"service.load.col.{k}") for k in ("label", "requests_per_s", "images_per_s", "p50_ms",
                                                              "p99_ms", "ok", "sent", "errors")}
        st.dataframe([{headings["label"]: r["label"], headings["requests_per_s"]: round(r["requests_per_s"], 1),
                       headings["images_per_s"]: round(r["images_per_s"], 1),
                       headings["p50_ms"]: None if r["p50_ms"] is None else round(r["p50_ms"], 1),
                       headings["p99_ms"]: None if r["p99_ms"] is None else round(r["p99_ms"], 1),
                       headings["ok"]: r["ok"], headings["sent"]: r["sent"],
                       headings["errors"]: ", ".join(f"{s}: {n}" for s, n in r["statuses"].items() if s != 200)}
                      for r in runs], hide_index=True)
        labels = {k: t(f"service.chart.{k}") for k in ("images_per_s", "ms", "runs_title", "latency_axis")}
        chart(load_runs_figure(runs, labels), config=PLOT_CONFIG, key="svc_fig_runs")
        if st.button(t("service.load.clear"), key="svc_clear_runs", disabled=not allowed):
            if operator.guard():
                ServiceStore().clear_load_runs()
                st.rerun()


# ----------------------------------------------------------------- snippets and cost
def snippets_section(url: str, model_ids: list[str]) -> None:
    st.subheader(t("service.snippets.title"))
    model_id = model_ids[0] if model_ids else "cnn"
    st.caption(t("service.snippets.intro", docs=f"{url}/docs"))
    curl, python = st.tabs(["curl", "Python"])
    curl.code(curl_snippet(url, model_id, language()), language="bash")
    python.code(python_snippet(url, model_id, language()), language="python")


def cost_section() -> None:
    st.subheader(t("service.cost.title"))
    capacity = [r for r in ServiceStore().load_runs() if r.get("rate") is None]  # as fast as answered
    best = max(capacity, key=lambda r: r["images_per_s"], default=None)
    if best is None or best["images_per_s"] <= 0:
        st.caption(t("service.cost.no_measurement"))
        return
    price = st.number_input(t("service.cost.price"), min_value=0.0, value=2.0, step=0.25, key="svc_price",
                            help=t("service.cost.price_help"))
    try:
        cost = calc.cost_per_million_predictions(best["images_per_s"], price)
    except ConfigError as exc:
        st.error("; ".join(exc.messages(language())))
        return
    st.markdown(t("service.cost.line", rate=f"{best['images_per_s']:,.0f}", run=best["label"],
                  cores=os.cpu_count() or 1, price=f"{price:,.2f}", cost=f"{cost:,.4f}"))
    page_link("challenges", t("service.cost.link"))


# ----------------------------------------------------------------- keys
def keys_section(allowed: bool) -> None:
    st.subheader(t("service.keys.title"))
    if not allowed:
        st.caption(t("service.keys.operator_only"))
        return
    store = ServiceStore()
    shown = st.session_state.pop("svc_new_key", None)
    if shown:
        st.success(t("service.keys.created", name=shown[0]))
        st.code(shown[1], language=None)
        st.warning(t("service.keys.shown_once"))
    with st.form("svc_new_key_form", border=True):
        a, b, c = st.columns(3)
        name = a.text_input(t("service.keys.name"), max_chars=MAX_KEY_NAME)
        rate = b.number_input(t("service.keys.rate"), 0.1, MAX_RATE_PER_S, DEFAULT_RATE_PER_S)
        quota = c.number_input(t("service.keys.quota"), 0, 10**12, DEFAULT_QUOTA_IMAGES, help=t("service.keys.quota_help"))
        if st.form_submit_button(t("service.keys.create"), type="primary"):
            if operator.guard():
                try:
                    record, key = store.create_key(name, float(rate), max(DEFAULT_BURST, int(rate)), int(quota))
                except KeyRequestError as exc:
                    st.error(t(f"service.keys.error.{exc.reason}", **exc.values))
                else:
                    st.session_state["svc_new_key"] = (record.name, key)
                    st.rerun()
    keys = store.keys()
    if not keys:
        st.caption(t("service.keys.none"))
        return
    try:
        if service.running():
            service.flush_usage()
    except Exception:  # usage then shows what was flushed a second ago
        pass
    headings = {k: t(f"service.keys.col.{k}") for k in ("name", "id", "status", "rate", "quota", "model", "requests",
                                                          "images", "compute_ms")}
    words = {k: t(f"service.keys.{k}") for k in ("active", "revoked")}
    st.dataframe(key_rows(keys, store.usage(), headings, words), hide_index=True)
    active = {k.id: k for k in keys if not k.revoked}
    if active:
        with st.container(horizontal=True, vertical_alignment="bottom"):
            chosen = st.selectbox(t("service.keys.revoke_which"), list(active),
                                  format_func=lambda i: f"{active[i].name} ({i})", key="svc_revoke_id")
            if st.button(t("service.keys.revoke"), key="svc_revoke"):
                if operator.guard():
                    store.revoke_key(chosen)
                    st.rerun()


def main() -> None:
    st.title(t("service.title"))
    st.caption(t("service.intro"))
    allowed = operator.access_panel("service.access.what")
    try:
        up = service.running()
    except (ClusterError, ServiceStoreError) as exc:
        st.error(problem_text(exc))
        return
    if not up:
        start_section(allowed)
        keys_section(allowed)
        return
    url = service.base_url()
    st.success(t("service.running", url=url, docs=f"{url}/docs"))
    found = deployments_section(allowed)
    model_ids = [s.deployment.model_id for s in found]
    live_section(model_ids)
    load_section(found, allowed)
    cost_section()
    snippets_section(url, model_ids)
    keys_section(allowed)


main()
