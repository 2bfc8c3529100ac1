"""Training launcher: queue runs on the server's warm workers, watch them live,
compare them, resume them, and hand their weights to the other pages.

A thin view: the run store (bigmodels.runs.store) is the only state; the form
is drawn from TrainConfig's declared settings and checked by the launch plan
(bigmodels.train.plan); workers (bigmodels.runs.worker) train; figures come
from bigmodels.figures.runs.
"""
from __future__ import annotations

import datetime as dt

import streamlit as st

from bigmodels.app import launcher as lui
from bigmodels.app.session import language, model_title, t
from bigmodels.figures.runs import (
    accuracy_figure, comparison_rows, epochs_csv, loss_figure, parallel_coordinates, steps_csv, steps_per_epoch,
)
from bigmodels.formatting import format_bytes, format_duration
from bigmodels.models.registry import get_spec, list_models, make_config
from bigmodels.models.sources import finished_run_sources
from bigmodels.problems import ConfigError
from bigmodels.runs.processes import pid_alive
from bigmodels.runs.queue import submit
from bigmodels.runs.store import FINISHED, RESUMABLE, STATUSES, RunStateError, RunStore, StoreError
from bigmodels.runs.worker import reap_orphans
from bigmodels.train.config import default_config, settings
from bigmodels.train.plan import Resources

SELECTED = "launcher_selected"
WAS_ACTIVE = "launcher_was_active"


def status_label(status: str) -> str:
    return f"{lui.STATUS_EMOJI[status]} {t('launcher.status.' + status)}"


def when(timestamp: float | None) -> str:
    return dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S") if timestamp else "–"


def bullet_list(lines: list[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


# ------------------------------------------------------------------ access
def may_change() -> bool:
    """Checked again at every action, not only when the buttons are drawn."""
    return lui.access_policy().allows(lui.operator_token())


def access_panel() -> bool:
    """The operator-token box; True if this session may launch and change runs."""
    policy = lui.access_policy()
    with st.container(border=True):
        st.markdown(f"**{t('launcher.access.title')}**")
        if policy.problem:
            st.error(t("launcher.access.problem", problem=policy.problem))
        elif policy.open:
            st.info(t("launcher.access.open"))
        else:
            given = st.text_input(t("launcher.access.token"), type="password", key=lui.token_key(),
                                  help=t("launcher.access.token_help"))
            if may_change():
                st.success(t("launcher.access.operator"))
            else:
                st.warning(t("launcher.access.watch_only"))
                if given:
                    st.error(t("launcher.access.wrong"))
    return may_change()


# ------------------------------------------------------------- launch form
def launch_form(store, allowed: bool) -> None:
    """The new-run form: one input per declared TrainConfig setting, checked by the plan."""
    st.subheader(t("launcher.form.title"))
    resources = Resources.local()
    c1, c2 = st.columns(2)
    model = c1.selectbox(t("launcher.form.model"), list_models(), format_func=model_title,
                         key="launcher_model", help=t("launcher.form.model_help"))
    preset = c2.selectbox(t("launcher.form.preset"), list(get_spec(model).presets), key=f"launcher_preset_{model}",
                          help=t("launcher.form.preset_help"))
    recipe = default_config(model)
    preset_values = vars(make_config(model, preset))
    device_choices = ["auto", *(d.name for d in resources.devices)]
    with st.form(f"launch_{model}"):
        columns = st.columns(2)  # settings pair up in declaration order: a column stacks in call order
        values = {}
        for i, (name, how) in enumerate(settings().items()):
            values[name] = lui.setting_input(columns[i % 2], name, how, getattr(recipe, name),
                                             t(how.label_key(name)), t(how.help_key(name), **how.bounds()),
                                             device_choices)
        processes = columns[len(values) % 2].number_input(
            t("launcher.form.processes"), value=1, step=1,
            help=t("launcher.form.processes_help") + " " + t("launcher.form.processes_max", n=resources.max_processes()))
        model_settings = st.text_input(
            t("launcher.form.model_settings"), placeholder='{"dropout": 0.1}',
            help=t("launcher.form.model_settings_help",
                   settings=", ".join(f"{k}={v}" for k, v in preset_values.items())))
        train_again = st.checkbox(t("launcher.form.train_again"), help=t("launcher.form.train_again_help"))
        submitted = st.form_submit_button(t("launcher.form.submit"), type="primary",
                                          disabled=store is None or not allowed)
    if store is not None and not allowed:
        st.caption(t("launcher.form.locked"))
    if submitted:
        launch(store, {"model": model, "preset": preset, **values, "processes": processes,
                       "model_settings": model_settings, "train_again": train_again}, resources)


def launch(store, values: dict, resources: Resources) -> None:
    if not may_change():
        st.error(t("launcher.access.denied"))
        return
    try:
        request = lui.parse_form(values, resources)
        submission = submit(store, request.plan, train_again=request.train_again, submission=lui.submission_key())
    except ConfigError as exc:
        st.error(t("launcher.form.invalid") + "\n\n" + bullet_list(exc.messages(language())))
        return
    except StoreError as exc:
        st.error(t("launcher.store.unreadable", error=exc))
        return
    lui.new_submission_key()
    run = submission.run
    st.session_state[SELECTED] = run.id
    for note in request.plan.notes:
        st.info(note.text(language()))
    if submission.cached:
        st.info(t("launcher.form.cached", run=run.id, accuracy=f"{run.final_accuracy or 0:.2%}"))
    else:
        if resources.get(run.target) is not None:
            lui.ensure_worker(store, run.target)
        st.success(t("launcher.form.queued", run=run.id, device=run.target))


# --------------------------------------------------------- runs and live view
def show_live(store, run) -> None:
    st.subheader(t("launcher.live.title", run=run.id))
    processes = f" × {run.world_size}" if run.world_size > 1 else ""
    st.markdown(t("launcher.live.summary", status=status_label(run.status), model=model_title(run.model),
                  device=(run.device or run.target) + processes, attempts=run.attempts))
    if run.status == "failed" and run.error:
        st.error(t("launcher.live.failed", error=run.error))
    elif run.status == "interrupted":
        st.warning(t("launcher.live.interrupted", error=run.error or ""))
    elif run.status == "queued":
        st.info(t("launcher.live.queued"))
    eta = run.eta()
    st.progress(run.progress, text=t("launcher.live.progress", step=run.step, total=run.total_steps or "?",
                                     percent=f"{run.progress:.0%}",
                                     eta=format_duration(eta) if eta is not None else "–"))
    m1, m2, m3 = st.columns(3)
    m1.metric(t("launcher.live.speed"), f"{run.samples_per_second:,.0f}" if run.samples_per_second else "–")
    m2.metric(t("launcher.live.lr"), f"{run.lr:.2e}" if run.lr is not None else "–")
    m3.metric(t("launcher.live.best"), f"{run.best_accuracy:.2%}" if run.best_accuracy is not None else "–")
    m4, m5, m6 = st.columns(3)
    memory_label = t("launcher.live.memory_device") if run.memory_kind == "device" else t("launcher.live.memory_process")
    m4.metric(memory_label, format_bytes(run.memory_bytes))
    m5.metric(t("launcher.live.duration"), format_duration(run.duration()))
    m6.metric(t("launcher.live.epoch"), f"{run.epoch} / {run.config['epochs']}")
    if run.step or run.epoch:
        loss, accuracy = live_figures(str(store.home), run.id, run.step, run.epoch, run.attempts, loss_texts(),
                                      accuracy_texts())
        left, right = st.columns(2)
        left.plotly_chart(loss, key=f"live_loss_{run.id}", config={"displaylogo": False})
        right.plotly_chart(accuracy, key=f"live_acc_{run.id}", config={"displaylogo": False})
    with st.expander(t("launcher.live.log"), expanded=run.is_active or run.status in ("failed", "interrupted")):
        lines = [f"{dt.datetime.fromtimestamp(ts).strftime('%H:%M:%S')}  {message}" for ts, message in
                 store.logs(run.id, 60)]
        st.code("\n".join(lines) or "–", language=None, wrap_lines=True)
    if run.status in FINISHED and run.checkpoint:
        problem = lui.checkpoint_problem(run.checkpoint)
        if problem:
            st.error(t("launcher.live.checkpoint_bad", error=problem))
        elif run.status == "succeeded":
            st.caption(t("launcher.live.reuse"))
    if run.versions:
        st.caption(t("launcher.live.provenance", versions=", ".join(f"{k} {v}" for k, v in run.versions.items()),
                     commit=run.git_commit or "–", data=run.data_source or "–", hash=run.config_hash))


@st.cache_data(show_spinner=False, max_entries=16)
def live_figures(home: str, run_id: str, step: int, epoch: int, attempt: int, loss_text: dict, accuracy_text: dict):
    """The live curves, rebuilt only when the run has moved on (the key holds its
    progress), so polling a finished or slow run costs nothing."""
    store = RunStore(home)
    run = store.get(run_id)
    steps, epochs = store.steps(run_id), store.epochs(run_id)
    return (loss_figure([(run_id, steps, epochs, steps_per_epoch(run))], 0.6, loss_text),
            accuracy_figure([(run_id, epochs)], accuracy_text))


def compare_headings() -> dict[str, str]:
    """Column titles for ``comparison_rows`` (its keys are the settings' names)."""
    form_labels = ("model", "preset", *settings(), "processes")
    return {"run": t("launcher.runs.col.run"), "status": t("launcher.runs.col.status"),
            **{k: t(f"launcher.form.{k}") for k in form_labels},
            "model_overrides": t("launcher.compare.col.model_overrides"),
            "best_accuracy": t("launcher.runs.col.best"), "final_accuracy": t("launcher.compare.col.final"),
            "samples_per_second": t("launcher.live.speed"), "duration_s": t("launcher.compare.col.duration")}


def loss_texts() -> dict[str, str]:
    return {"raw": t("launcher.chart.raw"), "train_loss": t("launcher.chart.train_loss"),
            "test_loss": t("launcher.chart.test_loss"), "x": t("launcher.chart.epoch"), "y": t("launcher.chart.loss")}


def accuracy_texts() -> dict[str, str]:
    return {"x": t("launcher.chart.epoch"), "y": t("launcher.chart.accuracy")}


def run_actions(store, run, allowed: bool) -> None:
    """Cancel, resume and delete, for operators only (checked again on click)."""
    a, b, c = st.columns(3)
    if a.button(t("launcher.action.cancel"), key=f"cancel_{run.id}", disabled=not (allowed and run.is_active),
                width="stretch"):
        if may_change():
            try:
                store.request_cancel(run.id)
                st.toast(t("launcher.action.cancel_done", run=run.id))
            except (RunStateError, StoreError) as exc:
                st.error(str(exc))
        else:
            st.error(t("launcher.access.denied"))
    if b.button(t("launcher.action.resume"), key=f"resume_{run.id}",
                disabled=not (allowed and run.status in RESUMABLE), width="stretch"):
        if may_change():
            try:
                resumed = store.resume(run.id)
                if Resources.local().get(resumed.target) is not None:
                    lui.ensure_worker(store, resumed.target)
                st.toast(t("launcher.action.resume_done", run=run.id))
            except (RunStateError, StoreError) as exc:
                st.error(str(exc))
        else:
            st.error(t("launcher.access.denied"))
    with c.popover(t("launcher.action.delete"), disabled=not (allowed and run.status in FINISHED), width="stretch"):
        st.write(t("launcher.action.delete_confirm", run=run.id))
        if st.button(t("launcher.action.delete_yes"), key=f"delete_{run.id}", type="primary"):
            if may_change():
                try:
                    removed = store.delete(run.id)
                    st.session_state.pop(SELECTED, None)
                    st.toast(t("launcher.action.delete_done", run=run.id, files=len(removed)))
                    st.rerun()
                except (RunStateError, StoreError) as exc:
                    st.error(str(exc))
            else:
                st.error(t("launcher.access.denied"))


def workers_panel(store) -> None:
    """The workers serving this store, and the devices this server has."""
    live = [w for w in store.workers() if w["state"] != "gone" and pid_alive(w["pid"])]
    with st.expander(t("launcher.workers.title", n=len(live)), expanded=False):
        st.caption(t("launcher.workers.devices", devices=", ".join(d.name for d in Resources.local().devices)))
        if live:
            states = ("idle", "busy", "warming")
            st.dataframe([{
                t("launcher.workers.col.device"): w["device"],
                t("launcher.workers.col.state"): t("launcher.workers.state." + w["state"]) if w["state"] in states
                else w["state"],
                t("launcher.workers.col.run"): w["run_id"] or "–",
                t("launcher.workers.col.since"): when(w["started_at"])} for w in live], hide_index=True, width="stretch")
        else:
            st.caption(t("launcher.workers.none"))
        st.caption(t("launcher.workers.hint", home=str(store.home)))


def runs_panel(store, allowed: bool) -> None:
    try:
        reap_orphans(store)  # a worker killed mid-run: say so, keep its checkpoint for resume
        runs = store.list_runs()
        st.header(t("launcher.runs.title"))
        workers_panel(store)
    except StoreError as exc:
        st.error(t("launcher.store.unreadable", error=exc))
        return
    active = any(r.is_active for r in runs)
    if st.session_state.get(WAS_ACTIVE) and not active:
        st.session_state[WAS_ACTIVE] = False
        st.rerun()  # the last run just ended: redraw the whole page (comparison, pickers)
    st.session_state[WAS_ACTIVE] = active

    if not runs:
        st.info(t("launcher.runs.none"))
        return
    f1, f2 = st.columns(2)
    statuses = f1.multiselect(t("launcher.runs.filter_status"), STATUSES, format_func=status_label,
                              key="launcher_filter_status")
    archs = f2.multiselect(t("launcher.runs.filter_arch"), list_models(), format_func=model_title,
                           key="launcher_filter_arch")
    shown = [r for r in runs if (not statuses or r.status in statuses) and (not archs or r.model in archs)]
    col = {k: t(f"launcher.runs.col.{k}") for k in ("run", "arch", "status", "progress", "best", "duration",
                                                      "device", "created")}
    shown_settings = [name for name, how in settings().items() if how.column]  # declared once, in TrainConfig
    st.dataframe(
        [{col["run"]: r.id, col["arch"]: model_title(r.model), col["status"]: status_label(r.status),
          col["progress"]: r.progress, col["best"]: None if r.best_accuracy is None else 100 * r.best_accuracy,
          col["duration"]: format_duration(r.duration()),
          **{t(f"launcher.form.{name}"): r.config.get(name) for name in shown_settings},
          col["device"]: (r.device or r.target) + (f" × {r.world_size}" if r.world_size > 1 else ""),
          col["created"]: when(r.created_at)} for r in shown],
        hide_index=True, width="stretch",
        column_config={col["progress"]: st.column_config.ProgressColumn(col["progress"], min_value=0, max_value=1,
                                                                         format="percent"),
                       col["best"]: st.column_config.NumberColumn(col["best"], format="%.2f %%")})
    if not shown:
        return
    ids = [r.id for r in shown]
    if st.session_state.get(SELECTED) not in ids:
        running = [r.id for r in shown if r.is_active]
        st.session_state[SELECTED] = running[0] if running else ids[0]
    selected_id = st.selectbox(t("launcher.runs.select"), ids, key=SELECTED)
    run = next(r for r in shown if r.id == selected_id)
    run_actions(store, run, allowed)
    st.divider()
    show_live(store, run)


def poll_runs(store, runs_column, allowed: bool) -> None:
    """Poll the store: briskly while something runs, slowly to notice other tabs' launches."""
    probe = []
    try:
        probe = store.list_runs(statuses=["queued", "running"], limit=1)
    except StoreError:
        pass  # poll slowly; the runs panel itself reports an unreadable store
    with runs_column:
        st.fragment(runs_panel, run_every=2.0 if probe else 15.0)(store, allowed)


# ---------------------------------------------------------------- compare
def compare_section(store) -> None:
    st.divider()
    st.header(t("launcher.compare.title"))
    if store is None:
        st.info(t("launcher.compare.no_store"))
    else:
        try:
            candidates = [r for r in store.list_runs() if r.epoch > 0]
        except StoreError as exc:
            candidates = []
            st.error(t("launcher.store.unreadable", error=exc))
        if not candidates:
            st.info(t("launcher.compare.none"))
        else:
            by_id = {r.id: r for r in candidates}
            default = [r.id for r in candidates if r.status == "succeeded"][:3]
            chosen = st.multiselect(t("launcher.compare.pick"), list(by_id), default=default, key="launcher_compare",
                                    format_func=lambda i: f"{i} · {status_label(by_id[i].status)}")
            smoothing = st.slider(t("launcher.compare.smoothing"), 0.0, 0.99, 0.6, 0.01,
                                  help=t("launcher.compare.smoothing_help"))
            if chosen:
                picked = [by_id[i] for i in chosen]
                steps = {r.id: store.steps(r.id) for r in picked}
                epochs = {r.id: store.epochs(r.id) for r in picked}
                left, right = st.columns(2)
                left.plotly_chart(loss_figure([(r.id, steps[r.id], epochs[r.id], steps_per_epoch(r)) for r in picked],
                                              smoothing, loss_texts()), key="compare_loss", config={"displaylogo": False})
                right.plotly_chart(accuracy_figure([(r.id, epochs[r.id]) for r in picked], accuracy_texts()),
                                   key="compare_acc", config={"displaylogo": False})
                st.subheader(t("launcher.compare.table"))
                heading = compare_headings()
                st.dataframe([{heading[k]: v for k, v in row.items()} for row in comparison_rows(picked)],
                             hide_index=True, width="stretch", column_config={
                                 heading["best_accuracy"]: st.column_config.NumberColumn(format="percent"),
                                 heading["final_accuracy"]: st.column_config.NumberColumn(format="percent"),
                                 heading["samples_per_second"]: st.column_config.NumberColumn(format="%.0f"),
                                 heading["duration_s"]: st.column_config.NumberColumn(format="%.1f")})
                if len(picked) >= 2:
                    st.subheader(t("launcher.compare.parallel"))
                    st.plotly_chart(parallel_coordinates(picked, {
                        "model": t("launcher.chart.model"), "optimizer": t("launcher.form.optimizer"),
                        "log_lr": t("launcher.chart.log_lr"), "batch_size": t("launcher.form.batch_size"),
                        "epochs": t("launcher.form.epochs"), "weight_decay": t("launcher.form.weight_decay"),
                        "label_smoothing": t("launcher.form.label_smoothing"), "accuracy": t("launcher.chart.best")}),
                        key="compare_parallel", config={"displaylogo": False})
                d1, d2, d3 = st.columns(3)
                d1.download_button(t("launcher.compare.csv_epochs"), epochs_csv([(r, epochs[r.id]) for r in picked]),
                                   file_name="bigmodels-epochs.csv", mime="text/csv", width="stretch")
                d2.download_button(t("launcher.compare.csv_steps"), steps_csv([(r, steps[r.id]) for r in picked]),
                                   file_name="bigmodels-steps.csv", mime="text/csv", width="stretch")
                with d3:
                    with_weights = [r for r in picked if r.checkpoint and r.status in FINISHED]
                    if with_weights:
                        target = st.selectbox(t("launcher.compare.checkpoint_pick"), [r.id for r in with_weights],
                                              key="launcher_ckpt_pick")
                        path = by_id[target].checkpoint
                        problem = lui.checkpoint_problem(path)
                        if problem:
                            st.error(t("launcher.live.checkpoint_bad", error=problem))
                        else:
                            st.download_button(t("launcher.compare.checkpoint"), data=lambda p=path: open(p, "rb").read(),
                                               file_name=f"{target}.pt", mime="application/octet-stream",
                                               width="stretch")
        st.caption(t("launcher.compare.reuse", n=len(finished_run_sources(lang=language()))))


def main() -> None:
    st.title(t("launcher.title"))
    st.write(t("launcher.intro"))
    store, store_error = lui.open_store()
    if store_error:
        st.error(t("launcher.store.unreadable", error=store_error))
    allowed = access_panel()
    form_column, runs_column = st.columns([2, 3], gap="large")
    with form_column:
        launch_form(store, allowed)
    if store is not None:
        try:
            lui.serve_queued(store)  # queued runs left from before an app restart get a worker
        except StoreError:
            pass  # shown below, where the runs are listed
        poll_runs(store, runs_column, allowed)
    compare_section(store)


main()
