"""Training launcher: queue runs on the cluster's warm device sessions, watch them live,
compare them, resume them, and hand their weights to the other pages.

A thin view: the run store (bigmodels.runs.store) is the only state; the form
is drawn from TrainConfig's declared settings and checked by the launch plan
(bigmodels.train.plan); device sessions on Ray (bigmodels.cluster) train; figures come
from bigmodels.figures.runs.
"""
from __future__ import annotations

import datetime as dt
import json

import streamlit as st

from bigmodels.app import launcher as lui
from bigmodels.app import operator
from bigmodels.app.charts import chart
from bigmodels.app.live import JOB_POLL_S, LIVE_REFRESH_S
from bigmodels.app.url_state import (
    encode_flag, flag, join, number_in, one_of, publish, seed, seeded, some_of, text_of,
)
from bigmodels.app.session import language, model_title, server_train_size, t
from bigmodels.figures.runs import (
    X_AXES, accuracy_figure, comparison_rows, confusion_figure, differing_settings, epochs_csv, group_accuracy_figure,
    group_curves, group_loss_figure, loss_figure, parallel_coordinates, per_class_figure, run_settings, scientific,
    steps_csv, steps_per_epoch, system_figure, table_text,
)
from bigmodels.reports.run_groups import DEFAULT_IGNORED, group_runs, result_stats
from bigmodels.data.mnist import data_text
from bigmodels.reports.comparison import device_text
from bigmodels.base.formatting import code_span, format_bytes, format_duration, plain_markdown
from bigmodels.models.registry import get_spec, list_models, make_config
from bigmodels.runs.sources import finished_run_sources
from bigmodels.base.problems import ConfigError
from bigmodels.runs.queue import submit
from bigmodels.runs.store import (
    FINISHED, MAX_NAME, MAX_NOTE, MAX_TAG, MAX_TAGS, RESUMABLE, STATUSES, RunInfoError, RunStateError, RunStore,
    StoreError, checkpoint_written,
)
from bigmodels.cluster.control import reap_orphans, wait_reasons
from bigmodels.train.config import default_config, quick_demo, settings
from bigmodels.train.plan import Resources

SELECTED = "launcher_selected"
PICKED = "launcher_picked"  # this session chose a run itself: stop following new runs
SEEN = "launcher_seen"  # the store's signature at the last full-page draw
COMPARE_OPEN = "launcher_compare_open"
COMPARE_PARAMS = ("runs", "x", "log", "smooth", "diff", "group", "repeat")  # the comparison's part of the address
PAGE_SIZE = 10  # runs per table page: the table draws what is on screen
CHOICE_SETTINGS = ("optimizer", "schedule", "precision")  # their values are shown translated


def status_label(status: str) -> str:
    return f"{lui.STATUS_EMOJI[status]} {t('launcher.status.' + status)}"


def when(timestamp: float | None) -> str:
    return dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S") if timestamp else "–"


def bullet_list(lines: list[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


# ------------------------------------------------------------- launch form
def launch_form(store, allowed: bool) -> None:
    """The new-run form: one input per declared TrainConfig setting, checked by the plan."""
    st.subheader(t("launcher.form.title"))
    resources = lui.planning_resources(store) if store is not None else Resources.local()
    c1, c2 = st.columns(2)
    model = c1.selectbox(t("launcher.form.model"), list_models(), format_func=model_title,
                         key="launcher_model", help=t("launcher.form.model_help"))
    preset = c2.selectbox(t("launcher.form.preset"), list(get_spec(model).presets), key=f"launcher_preset_{model}",
                          format_func=preset_title, help=t("launcher.form.preset_help"))
    data = lui.data_kind()
    demo = quick_demo(model, data)
    start = st.radio(t("launcher.start.title"), ["demo", "recipe"], horizontal=True, key=f"launcher_start_{model}",
                     format_func=lambda k: t(f"launcher.start.{k}"), help=t("launcher.start.help"))
    recipe = demo if start == "demo" else default_config(model)
    preset_values = vars(make_config(model, preset))
    device_choices = ["auto", *(d.name for d in resources.devices)]
    st.html(lui.FORM_CSS)
    with st.form(f"launch_{model}_{start}"):  # a new base fills the form anew
        # Launch first: a presenter picks a quick demo and launches; the settings wait below.
        submitted = st.form_submit_button(t("launcher.form.submit"), type="primary", width="stretch",
                                          disabled=store is None or not allowed)
        demo_caption(model, data, demo)
        settings_box = st.expander(t("launcher.form.settings"), expanded=False)
        columns = settings_box.columns(2)  # settings pair up in declaration order: a column stacks in call order
        values = {}
        for i, (name, how) in enumerate(settings().items()):
            values[name] = lui.setting_input(columns[i % 2], name, how, getattr(recipe, name),
                                             t(how.label_key(name)), t(how.help_key(name), **how.bounds()),
                                             device_choices, choice_title if name in CHOICE_SETTINGS else str,
                                             key=f"launcher_{model}_{start}_{data}_{name}")
        processes = lui.processes_input(
            columns[len(values) % 2], t("launcher.form.processes"),
            t("launcher.form.processes_help") + " " + t("launcher.form.processes_max", n=resources.max_processes()),
            key=f"launcher_{model}_{start}_{data}_processes")
        needs = columns[(len(values) + 1) % 2].text_input(t("launcher.form.needs"), help=t("launcher.form.needs_help"))
        model_settings = settings_box.text_input(
            t("launcher.form.model_settings"), placeholder='{"dropout": 0.1}',
            value=json.dumps(recipe.model_overrides) if recipe.model_overrides else "",
            help=t("launcher.form.model_settings_help",
                   settings=", ".join(f"{k}={v}" for k, v in preset_values.items())))
        train_again = settings_box.checkbox(t("launcher.form.train_again"), help=t("launcher.form.train_again_help"))
    if store is not None and not allowed:
        st.caption(t("launcher.form.locked"))
    if submitted:
        launch(store, {"model": model, "preset": preset, **values, "processes": processes, "needs": needs,
                       "model_settings": model_settings, "train_again": train_again}, resources)


def choice_title(value: str) -> str:
    return t(f"launcher.choice.{value}")


def preset_title(preset: str) -> str:
    return t(f"launcher.model_preset.{preset}")


def demo_caption(model: str, data: str, demo) -> None:
    """The quick demo's measured time and accuracy, with where and when (from
    benchmarks/results/presets.json), or that it was not measured."""
    measured = lui.demo_measurements()
    row = lui.demo_measurement(measured, data, model, demo)
    if row is None:
        st.caption(t("launcher.start.unmeasured", data=t(f"launcher.start.data.{data}")))
        return
    cold = lui.cold_start_seconds()
    st.caption(t("launcher.start.measured", seconds=f"{row['median_seconds']:.0f}",
                 accuracy=f"{row['median_accuracy']:.1%}", data=t(f"launcher.start.data.{data}"),
                 n=len(row.get("runs", [])), device=device_text(measured.get("device_name", "?"), language()),
                 date=str(measured.get("measured_at", "?"))[:10], cold="?" if cold is None else f"{cold:.0f}"))


def launch(store, values: dict, resources: Resources) -> None:
    if not operator.guard():
        return
    try:
        request = lui.parse_form(values, resources, server_train_size())
        submission = submit(store, request.plan, train_again=request.train_again, submission=lui.submission_key(),
                            needs=request.needs)
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
        lui.ensure_dispatcher(store)
        st.success(t("launcher.form.queued", run=run.id, device=run.target))


# --------------------------------------------------------- runs and live view
def show_live(store, run, allowed: bool) -> None:
    st.subheader(t("launcher.live.title", run=plain_markdown(run.title)))  # anyone's words: no link, no image
    processes = f" × {run.world_size}" if run.world_size > 1 else ""
    st.markdown(t("launcher.live.summary", status=status_label(run.status), model=model_title(run.model),
                  device=(f"{run.node} · " if run.node else "") + device_text(run.device or run.target, language())
                  + processes,
                  attempts=run.attempts))
    if run.name:
        st.caption(t("launcher.live.id", run=run.id))
    if run.tags or run.note:
        st.caption(" ".join(code_span(tag) for tag in run.tags)
                   + ("  \n" + plain_markdown(lui.note_text(run.note, language())) if run.note else ""))
    if run.status == "failed" and run.error:
        st.error(t("launcher.live.failed", error=run.error))
    elif run.status == "interrupted":
        st.warning(t("launcher.live.interrupted", error=run.error or "") + " " + resume_note(run))
    elif run.status == "queued":
        starting = lui.cluster_startup(store)
        if starting is not None:
            st.info(startup_text(*starting), icon=":material/hourglass_top:")
        else:
            reason = wait_reasons(lui.cluster_state(store), language()).get(run.id)
            st.info(t("launcher.live.queued") + ("  \n" + t("launcher.cluster.waits", reason=reason) if reason else ""))
    eta = run.eta()
    st.progress(run.progress, text=t("launcher.live.progress", step=run.step, total=run.total_steps or "?",
                                     percent=f"{run.progress:.0%}",
                                     eta=format_duration(eta) if eta is not None else "–"))
    m1, m2, m3 = st.columns(3)
    m1.metric(t("launcher.live.speed"), f"{run.samples_per_second:,.0f}" if run.samples_per_second else "–")
    m2.metric(t("launcher.live.lr"), scientific(run.lr) if run.lr else "–")
    m3.metric(t("launcher.live.best"), f"{run.best_accuracy:.2%}" if run.best_accuracy is not None else "–")
    m4, m5, m6 = st.columns(3)
    memory_label = t("launcher.live.memory_device") if run.memory_kind == "device" else t("launcher.live.memory_process")
    m4.metric(memory_label, format_bytes(run.memory_bytes))
    m5.metric(t("launcher.live.duration"), format_duration(run.duration()))
    m6.metric(t("launcher.live.epoch"), f"{run.epoch} / {run.config['epochs']}")
    views = ["curves", "system", "evaluation", "notes"]
    view = st.segmented_control(t("launcher.live.view"), views, default="curves", key="launcher_live_view",
                                format_func=lambda v: t(f"launcher.live.view.{v}")) or "curves"
    if view == "curves":
        live_curves(store, run)
    elif view == "system":
        live_system(store, run)
    elif view == "evaluation":
        live_evaluation(store, run)
    else:
        run_info_form(store, run, allowed)
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
                     commit=run.git_commit or "–", data=data_text(run.data_source, language()) or "–",
                     hash=run.config_hash))


def resume_note(run) -> str:
    """What Resume will do for this run: continue from its checkpoint, or start over."""
    if checkpoint_written(run.checkpoint):
        return t("launcher.live.resume_from", epoch=run.epoch)
    return t("launcher.live.resume_restart")


def axis_controls(key: str) -> tuple[str, bool]:
    """The x axis (epoch, step, wall time) and the log-loss switch of a chart pair."""
    left, right = st.columns([3, 2])
    shared = key == "compare"  # the comparison's axes are in the address; a live view's follow its run
    if shared:
        seed(f"{key}_x", "x", one_of(X_AXES), "epoch")
        seed(f"{key}_log", "log", flag, True)
    x = left.segmented_control(t("launcher.chart.x_axis"), X_AXES, key=f"{key}_x",
                               default=seeded(f"{key}_x") if shared else "epoch",
                               format_func=lambda a: t(f"launcher.chart.x.{a}")) or "epoch"
    log_y = right.toggle(t("launcher.chart.log_loss"), key=f"{key}_log", value=seeded(f"{key}_log") if shared else False)
    if shared:
        publish("x", x, "epoch")
        publish("log", log_y, True, encode_flag)
    return x, log_y


def live_curves(store, run) -> None:
    if not (run.step or run.epoch):
        st.caption(t("launcher.live.no_curves"))
        return
    x, log_y = axis_controls("live")
    loss, accuracy = live_figures(str(store.home), run.id, run.step, run.epoch, run.attempts, x, log_y,
                                  loss_texts(x), accuracy_texts(x))
    left, right = st.columns(2)
    with left:
        chart(loss, key=f"live_loss_{run.id}")
    with right:
        chart(accuracy, key=f"live_acc_{run.id}")


@st.cache_data(show_spinner=False, max_entries=16)
def live_figures(home: str, run_id: str, step: int, epoch: int, attempt: int, x: str, log_y: bool, loss_text: dict,
                 accuracy_text: dict):
    """The live curves, rebuilt only when the run has moved on (the key holds its
    progress), so polling a finished or slow run costs nothing."""
    store = RunStore(home)
    run = store.get(run_id)
    steps, epochs = store.steps(run_id), store.epochs(run_id)
    per_epoch = steps_per_epoch(run)
    return (loss_figure([(run.title, steps, epochs, per_epoch)], 0.6, loss_text, x=x, log_y=log_y),
            accuracy_figure([(run.title, epochs, per_epoch)], accuracy_text, x=x))


def live_system(store, run) -> None:
    samples = store.system_metrics(run.id)
    if not samples:
        st.caption(t("launcher.system.none"))
        return
    last = samples[-1]
    c1, c2 = st.columns(2)
    c1.metric(t("launcher.system.cpu"), "–" if last["cpu_percent"] is None else f"{last['cpu_percent']:.0f} %")
    c2.metric(t("launcher.system.memory"), format_bytes(last["memory_bytes"]))
    chart(system_figure(samples, {
        "cpu": t("launcher.system.cpu"), "gpu": t("launcher.system.gpu"), "memory": t("launcher.system.memory"),
        "gpu_memory": t("launcher.system.gpu_memory"), "percent": t("launcher.system.percent"),
        "mib": t("launcher.system.mib"), "x": t("launcher.chart.x.time")}), key=f"system_{run.id}")
    st.caption(t("launcher.system.caption", n=len(samples)))


def live_evaluation(store, run) -> None:
    if not run.checkpoint or run.epoch < 1:
        st.caption(t("launcher.eval.no_checkpoint"))
        return
    state = lui.run_evaluation(store, run.checkpoint)
    if state.error:
        st.error(t("launcher.live.checkpoint_bad", error=state.error))
    elif state.busy or state.record is None:
        st.info(t("launcher.eval.busy"))
    else:
        record = state.record
        st.caption(t("launcher.eval.caption", accuracy=f"{record['accuracy']:.2%}", n=f"{record['test_images']:,}",
                     epoch=run.epoch))
        left, right = st.columns(2)
        with left:
            chart(confusion_figure(record["confusion"], {
                "true": t("launcher.eval.true"), "predicted": t("launcher.eval.predicted"),
                "hover": t("launcher.eval.hover")}), key=f"confusion_{run.id}")
        with right:
            chart(per_class_figure(record["per_class_accuracy"], {
                "x": t("launcher.eval.digit"), "y": t("launcher.eval.per_class")}), key=f"per_class_{run.id}")


def run_info_form(store, run, allowed: bool) -> None:
    """Name, tags and note of a run, for operators (checked again on save)."""
    with st.form(f"info_{run.id}", border=False):
        name = st.text_input(t("launcher.info.name"), value=run.name or "", max_chars=MAX_NAME,
                             placeholder=run.id)
        tags = st.text_input(t("launcher.info.tags"), value=", ".join(run.tags),
                             help=t("launcher.info.tags_help", n=MAX_TAGS, length=MAX_TAG))
        note = st.text_area(t("launcher.info.note"), value=run.note, max_chars=MAX_NOTE, height=80)
        saved = st.form_submit_button(t("launcher.info.save"), disabled=not allowed)
    if saved:
        if not operator.guard():
            return
        try:
            store.set_info(run.id, name=name, tags=tags, note=note)
            st.success(t("launcher.info.saved"))
        except RunInfoError as exc:
            st.error(t(f"launcher.info.too_long.{exc.field}", limit=exc.limit, got=exc.got))
        except (RunStateError, StoreError) as exc:
            st.error(t("launcher.store.unreadable", error=exc))


def compare_headings() -> dict[str, str]:
    """Column titles for ``comparison_rows`` (its keys are the settings' names)."""
    form_labels = ("model", "preset", *settings(), "processes")
    return {"run": t("launcher.runs.col.id"), "name": t("launcher.runs.col.run"), "status": t("launcher.runs.col.status"),
            **{k: t(f"launcher.form.{k}") for k in form_labels},
            "model_overrides": t("launcher.compare.col.model_overrides"),
            "best_accuracy": t("launcher.runs.col.best"), "final_accuracy": t("launcher.compare.col.final"),
            "samples_per_second": t("launcher.live.speed"), "duration_s": t("launcher.compare.col.duration"),
            "device": t("launcher.runs.col.device")}


def shown_value(key: str, value):
    """A setting's value as the table shows it: names translated, rates as 1e-3."""
    if key == "status":
        return status_label(value)
    if key == "model":
        return model_title(value)
    if key == "preset":
        return preset_title(value)
    if key in CHOICE_SETTINGS and value is not None:
        return choice_title(value)
    if key == "lr" and value:
        return scientific(value)
    return value


def loss_texts(x: str = "epoch") -> dict[str, str]:
    return {"raw": t("launcher.chart.raw"), "train_loss": t("launcher.chart.train_loss"),
            "test_loss": t("launcher.chart.test_loss"), "x": t(f"launcher.chart.x.{x}"), "y": t("launcher.chart.loss")}


def accuracy_texts(x: str = "epoch") -> dict[str, str]:
    return {"x": t(f"launcher.chart.x.{x}"), "y": t("launcher.chart.accuracy")}


def run_actions(store, run, allowed: bool) -> None:
    """Cancel, resume and delete, for operators only (checked again on click)."""
    a, b, c = st.columns(3)
    if a.button(t("launcher.action.cancel"), key=f"cancel_{run.id}", disabled=not (allowed and run.is_active),
                width="stretch"):
        if operator.guard():
            try:
                store.request_cancel(run.id)
                st.toast(t("launcher.action.cancel_done", run=run.id))
            except (RunStateError, StoreError) as exc:
                st.error(str(exc))
    if b.button(t("launcher.action.resume"), key=f"resume_{run.id}",
                disabled=not (allowed and run.status in RESUMABLE), width="stretch"):
        if operator.guard():
            try:
                resumed = store.resume(run.id)
                lui.ensure_dispatcher(store)
                st.toast(t("launcher.action.resume_done" if resumed.resume else "launcher.action.restart_done",
                           run=run.id))
            except (RunStateError, StoreError) as exc:
                st.error(str(exc))
    with c.popover(t("launcher.action.delete"), disabled=not (allowed and run.status in FINISHED), width="stretch"):
        st.write(t("launcher.action.delete_confirm", run=run.id))
        if st.button(t("launcher.action.delete_yes"), key=f"delete_{run.id}", type="primary"):
            if operator.guard():
                try:
                    removed = store.delete(run.id)
                    st.session_state.pop(SELECTED, None)
                    st.toast(t("launcher.action.delete_done", run=run.id, files=len(removed)))
                    st.rerun()
                except (RunStateError, StoreError) as exc:
                    st.error(str(exc))


def cluster_panel(store) -> None:
    """The cluster as the dispatcher last reported it: nodes, device sessions, the
    queue and why each queued run waits, and any problem it has."""
    state = lui.cluster_state(store)
    if state is None:
        with st.expander(t("launcher.cluster.title", nodes=0, sessions=0, busy=0), expanded=False):
            st.caption(t("launcher.cluster.cold"))
            st.caption(t("launcher.cluster.where", address="–", kind="–", home=str(store.home)))
        return
    for problem in state.get("problems", {}).values():
        st.warning(t("launcher.cluster.problem", problem=problem))
    sessions = state.get("sessions", [])
    warm = sum(s["state"] in ("warm", "busy") for s in sessions)
    busy = sum(s["state"] == "busy" for s in sessions)
    with st.expander(t("launcher.cluster.title", nodes=len(state.get("nodes", [])), sessions=warm, busy=busy),
                     expanded=False):
        cluster = state.get("cluster") or {}
        kind = t("launcher.cluster.kind." + ("embedded" if cluster.get("embedded") else "external"))
        st.caption(t("launcher.cluster.where", address=cluster.get("address", "–"), kind=kind, home=str(store.home)))
        col = {k: t(f"launcher.cluster.col.{k}") for k in ("host", "address", "cpus", "gpus", "memory", "custom",
                                                           "session", "device", "state", "run", "device_memory",
                                                           "utilisation", "process", "reason")}
        st.markdown(f"**{t('launcher.cluster.nodes')}**")
        st.dataframe([{col["host"]: n.get("host"), col["address"]: n.get("address"),
                       col["cpus"]: n.get("cpus"), col["gpus"]: n.get("gpus"),
                       col["memory"]: format_bytes(n.get("memory_bytes")),
                       col["custom"]: ", ".join(n.get("custom", [])) or "–"} for n in state.get("nodes", [])],
                     hide_index=True, width="stretch")
        st.markdown(f"**{t('launcher.cluster.sessions')}**")
        states = ("warming", "warm", "busy", "dead")
        gpus = any(s.get("device_total") for s in sessions)  # device memory and utilisation mean nothing on a CPU
        st.dataframe([{col["session"]: s["key"],
                       col["state"]: t("launcher.cluster.state." + s["state"]) if s["state"] in states else s["state"],
                       col["run"]: s.get("run_id") or "–",
                       **({col["device_memory"]: (f"{format_bytes(s['device_free'])} / "
                                                  f"{format_bytes(s['device_total'])}" if s.get("device_total") else "–"),
                           col["utilisation"]: "–" if s.get("gpu_percent") is None else f"{s['gpu_percent']:.0f} %"}
                          if gpus else {}),
                       col["process"]: format_bytes(s.get("process_bytes")),
                       col["device"]: device_text(s.get("device_name") or s["device"], language())} for s in sessions],
                     hide_index=True, width="stretch")
        waiting = wait_reasons(state, language())
        if waiting:  # as text, not a table: a reason is a sentence and must wrap
            st.markdown(f"**{t('launcher.cluster.waiting')}**")
            st.markdown("\n".join(f"- `{run_id}`: {reason}" for run_id, reason in waiting.items()))


def runs_table(runs) -> None:
    col = {k: t(f"launcher.runs.col.{k}") for k in ("run", "status", "best", "duration", "arch", "progress", "tags",
                                                      "device", "created", "id")}
    shown_settings = [name for name, how in settings().items() if how.column]  # declared once, in TrainConfig
    st.dataframe(
        [{col["run"]: table_text(r.title), col["status"]: status_label(r.status),
          col["best"]: None if r.best_accuracy is None else 100 * r.best_accuracy,
          col["duration"]: format_duration(r.duration()), col["arch"]: model_title(r.model),
          col["progress"]: r.progress, col["tags"]: table_text(", ".join(r.tags)),
          **{t(f"launcher.form.{name}"): shown_value(name, r.config.get(name)) for name in shown_settings},
          col["device"]: (f"{r.node} · " if r.node else "") + device_text(r.device or r.target, language())
          + (f" × {r.world_size}" if r.world_size > 1 else ""),
          col["created"]: when(r.created_at), col["id"]: r.id} for r in runs],
        hide_index=True, width="stretch", height=38 + 35 * max(1, len(runs)),
        # The first four columns fit the runs column at 1280 px, so a run's name, status, accuracy and
        # duration are read without scrolling; the rest scroll sideways.
        column_config={col["run"]: st.column_config.TextColumn(col["run"], width=200),
                       col["status"]: st.column_config.TextColumn(col["status"], width=95),
                       col["progress"]: st.column_config.ProgressColumn(col["progress"], min_value=0, max_value=1,
                                                                         format="percent"),
                       col["best"]: st.column_config.NumberColumn(col["best"], format="%.2f %%", width=85),
                       col["duration"]: st.column_config.TextColumn(col["duration"], width=75)})


def runs_panel(store, allowed: bool) -> None:
    """The runs table and the selected run's live view. Drawn every LIVE_REFRESH_S in
    every tab; each poll reads the store once (one query for the list) and the
    charts are rebuilt only when their run moved on."""
    disk = store.disk_problem()  # read-only or full: say so on every poll, and list what can be read
    if disk is not None:
        st.error(disk.text(language()))
    try:
        if disk is None:
            reap_orphans(store)  # the dispatcher killed mid-run: say so, keep the checkpoints for resume
    except StoreError as exc:  # the runs can still be listed
        st.error(t("launcher.store.unreadable", error=exc))
    try:
        runs, tags = listed_runs(str(store.home), store.signature())
        st.header(t("launcher.runs.title"))
        cluster_panel(store)
    except StoreError as exc:
        st.error(t("launcher.store.unreadable", error=exc))
        return
    seen = tuple((r.id, r.status) for r in runs)
    if st.session_state.get(SEEN) is not None and st.session_state[SEEN] != seen \
            and st.session_state.get(COMPARE_OPEN):
        st.session_state[SEEN] = seen
        st.rerun()  # a run was added or ended: the comparison's pickers need the whole page
    st.session_state[SEEN] = seen

    if not runs:
        st.info(t("launcher.runs.none"))
        return
    # the view is in the address: a copied link opens these filters, this sort, this page
    seed("launcher_filter_status", "status", some_of(STATUSES), [])
    seed("launcher_filter_arch", "arch", some_of(list_models()), [])
    seed("launcher_filter_tag", "tag", some_of(tags), [])
    seed("launcher_filter_text", "q", text_of(200), "")
    seed("launcher_sort", "sort", one_of(lui.SORTS), lui.SORTS[0])
    seed("launcher_sort_desc", "desc", flag, True)
    f1, f2, f3, f4 = st.columns([3, 3, 2, 3])
    statuses = f1.multiselect(t("launcher.runs.filter_status"), STATUSES, format_func=status_label,
                              key="launcher_filter_status", default=seeded("launcher_filter_status"),
                              placeholder=t("launcher.runs.all"))
    archs = f2.multiselect(t("launcher.runs.filter_arch"), list_models(), format_func=model_title,
                           key="launcher_filter_arch", default=seeded("launcher_filter_arch"),
                           placeholder=t("launcher.runs.all"))
    chosen_tags = f3.multiselect(t("launcher.runs.filter_tag"), tags, key="launcher_filter_tag",
                                 default=seeded("launcher_filter_tag"),
                                 placeholder=t("launcher.runs.all"))
    text = f4.text_input(t("launcher.runs.filter_text"), key="launcher_filter_text", value=seeded("launcher_filter_text"),
                         placeholder=t("launcher.runs.filter_text_hint"))
    s1, s2, s3 = st.columns([3, 2, 2])
    by = s1.selectbox(t("launcher.runs.sort"), lui.SORTS, format_func=lambda k: t(f"launcher.runs.sort.{k}"),
                      key="launcher_sort", index=lui.SORTS.index(seeded("launcher_sort")))
    descending = s2.toggle(t("launcher.runs.descending"), key="launcher_sort_desc", value=seeded("launcher_sort_desc"))
    shown = lui.sort_runs(lui.select_runs(runs, statuses, archs, chosen_tags, text), by, descending)
    pages = max(1, -(-len(shown) // PAGE_SIZE))
    if pages > 1:
        seed("launcher_page", "page", number_in(1, pages, whole=True), 1)
        st.session_state["launcher_page"] = min(st.session_state["launcher_page"], pages)  # fewer runs match now
        page = s3.number_input(t("launcher.runs.page", pages=pages), min_value=1, max_value=pages, step=1,
                               key="launcher_page", value=seeded("launcher_page"))
    else:
        page = 1
    publish("status", statuses, [], join)
    publish("arch", archs, [], join)
    publish("tag", chosen_tags, [], join)
    publish("q", text.strip(), "")
    publish("sort", by, lui.SORTS[0])
    publish("desc", descending, True, encode_flag)
    publish("page", int(page), 1)
    on_page, pages = lui.page_of(shown, int(page), PAGE_SIZE)
    runs_table(on_page)
    st.caption(t("launcher.runs.count", shown=len(on_page), matching=len(shown), total=len(runs)))
    by_id = {r.id: r for r in runs}
    selected = st.session_state.get(SELECTED)
    active = [r.id for r in runs if r.is_active]
    if active and not st.session_state.get(PICKED) and selected not in active:
        selected = active[0]  # until a run is picked, a tab follows the newest active run, wherever it was launched
        st.session_state[SELECTED] = selected
    elif selected not in by_id:
        selected = shown[0].id if shown else runs[0].id
        st.session_state[SELECTED] = selected
    ids = [r.id for r in on_page]
    if selected not in ids:
        ids.insert(0, selected)  # the run being watched stays choosable on every page
    selected_id = st.selectbox(t("launcher.runs.select"), ids, key=SELECTED,
                               on_change=lambda: st.session_state.__setitem__(PICKED, True),
                               format_func=lambda i: f"{by_id[i].title} · {status_label(by_id[i].status)}")
    if st.query_params.get("run") != selected_id:
        st.query_params["run"] = selected_id  # the address bar links to this run
    run = by_id[selected_id]
    run_actions(store, run, allowed)
    st.divider()
    show_live(store, run, allowed)


@st.cache_data(show_spinner=False, max_entries=32)
def listed_runs(home: str, signature: tuple) -> tuple[list, list[str]]:
    """Every run and every tag, read again only when the store's signature moved:
    an idle tab's poll costs one aggregate query."""
    store = RunStore(home)
    return store.list_runs(), store.tags()


def poll_runs(store, runs_column, allowed: bool) -> None:
    """Redraw the runs panel every LIVE_REFRESH_S in every tab, idle or not: a run
    launched in another tab, or resumed after a cancel, is seen within one poll."""
    with runs_column:
        st.fragment(runs_panel, run_every=LIVE_REFRESH_S)(store, allowed)


def open_deep_link(store) -> None:
    """``?run=ID`` opens that run (once per session, so picking another one sticks)."""
    if st.session_state.get("launcher_link_done"):
        return
    st.session_state["launcher_link_done"] = True
    wanted = st.query_params.get("run")
    if wanted is None:
        return
    run_id = lui.deep_link(wanted)
    try:
        found = run_id is not None and store.get(run_id) is not None
    except StoreError:
        return
    if found:
        st.session_state[SELECTED] = run_id
        st.session_state[PICKED] = True
    else:
        st.warning(t("launcher.runs.no_such_run", run=str(wanted)[:100]))


# ---------------------------------------------------------------- compare
def compare_section(store) -> None:
    """Drawn only when asked for: the page opens with the runs, not six charts."""
    st.divider()
    st.header(t("launcher.compare.title"))
    seed(COMPARE_OPEN, "compare", flag, False)
    shown = st.toggle(t("launcher.compare.show"), key=COMPARE_OPEN, value=seeded(COMPARE_OPEN),
                      help=t("launcher.compare.show_help"))
    publish("compare", shown, False, encode_flag)
    if not shown:
        for param in COMPARE_PARAMS:  # a closed comparison leaves nothing of itself in the address
            publish(param, None, None)
        st.caption(t("launcher.compare.reuse", n=len(finished_run_sources(lang=language()))))
        return
    if store is None:
        st.info(t("launcher.compare.no_store"))
        return
    try:
        candidates = [r for r in store.list_runs() if r.epoch > 0]
    except StoreError as exc:
        st.error(t("launcher.store.unreadable", error=exc))
        return
    if not candidates:
        st.info(t("launcher.compare.none"))
        return
    by_id = {r.id: r for r in candidates}
    default = [r.id for r in candidates if r.status == "succeeded"][:3]
    seed("launcher_compare", "runs", some_of(by_id), default)
    st.session_state["launcher_compare"] = [i for i in st.session_state["launcher_compare"] if i in by_id]
    chosen = st.multiselect(t("launcher.compare.pick"), list(by_id), key="launcher_compare",
                            default=seeded("launcher_compare"),
                            format_func=lambda i: f"{by_id[i].title} · {status_label(by_id[i].status)}",
                            placeholder=t("launcher.compare.pick_hint"))
    publish("runs", chosen, default, join)
    if not chosen:
        return
    picked = [by_id[i] for i in chosen]
    x, log_y = axis_controls("compare")
    seed("launcher_smoothing", "smooth", number_in(0.0, 0.99), 0.6)
    smoothing = st.slider(t("launcher.compare.smoothing"), 0.0, 0.99, seeded("launcher_smoothing"), 0.01,
                          key="launcher_smoothing",
                          help=t("launcher.compare.smoothing_help"))
    publish("smooth", round(smoothing, 2), 0.6)
    steps = {r.id: store.steps(r.id) for r in picked}
    epochs = {r.id: store.epochs(r.id) for r in picked}
    groups = grouping(picked)
    left, right = st.columns(2)
    if groups is None:
        with left:
            chart(loss_figure([(r.title, steps[r.id], epochs[r.id], steps_per_epoch(r)) for r in picked],
                              smoothing, loss_texts(x), x=x, log_y=log_y), key="compare_loss")
        with right:
            chart(accuracy_figure([(r.title, epochs[r.id], steps_per_epoch(r)) for r in picked], accuracy_texts(x),
                                  x=x), key="compare_acc")
    else:
        curves = [(group_label(g), group_curves([(r, steps[r.id], epochs[r.id]) for r in g.runs], smoothing, x))
                  for g in groups]
        with left:
            chart(group_loss_figure([(label, train, test) for label, (train, test, _) in curves], loss_texts(x),
                                    log_y=log_y), key="compare_group_loss")
        with right:
            chart(group_accuracy_figure([(label, acc) for label, (_, _, acc) in curves], accuracy_texts(x)),
                  key="compare_group_acc")
        st.caption(t("launcher.group.caption"))
        group_table(groups)
    st.subheader(t("launcher.compare.table"))
    seed("launcher_diff", "diff", flag, True)
    only_differences = st.toggle(t("launcher.compare.only_diff"), key="launcher_diff",
                                 value=seeded("launcher_diff")) and len(picked) > 1
    publish("diff", st.session_state["launcher_diff"], True, encode_flag)
    heading = compare_headings()
    st.dataframe([{heading[k]: shown_value(k, v) for k, v in row.items()}
                  for row in comparison_rows(picked, only_differences=only_differences)],
                 hide_index=True, width="stretch", column_config={
                     heading["best_accuracy"]: st.column_config.NumberColumn(format="percent"),
                     heading["final_accuracy"]: st.column_config.NumberColumn(format="percent"),
                     heading["samples_per_second"]: st.column_config.NumberColumn(format="%.0f"),
                     heading["duration_s"]: st.column_config.NumberColumn(format="%.1f")})
    if len(picked) >= 2:
        heading = compare_headings()
        parallel = parallel_coordinates(picked, {**heading, "lr_log": t("launcher.chart.lr_log"),
                                                 "accuracy": t("launcher.chart.best")})
        if parallel is not None:  # runs that differ in no setting have nothing to draw against their accuracy
            st.subheader(t("launcher.compare.parallel"))
            chart(parallel, key="compare_parallel")  # parcoords: drawn by st.plotly_chart (bigmodels.app.charts)
    d1, d2, d3 = st.columns(3)
    d1.download_button(t("launcher.compare.csv_epochs"), epochs_csv([(r, epochs[r.id]) for r in picked]),
                       file_name="bigmodels-epochs.csv", mime="text/csv", width="stretch")
    d2.download_button(t("launcher.compare.csv_steps"), steps_csv([(r, steps[r.id]) for r in picked]),
                       file_name="bigmodels-steps.csv", mime="text/csv", width="stretch")
    with d3:
        with_weights = [r for r in picked if r.checkpoint and r.status in FINISHED]
        if with_weights:
            target = st.selectbox(t("launcher.compare.checkpoint_pick"), [r.id for r in with_weights],
                                  format_func=lambda i: by_id[i].title, key="launcher_ckpt_pick")
            path = by_id[target].checkpoint
            problem = lui.checkpoint_problem(path)
            if problem:
                st.error(t("launcher.live.checkpoint_bad", error=problem))
            else:
                st.download_button(t("launcher.compare.checkpoint"), data=lambda p=path: open(p, "rb").read(),
                                   file_name=f"{target}.pt", mime="application/octet-stream", width="stretch")
    st.caption(t("launcher.compare.reuse", n=len(finished_run_sources(lang=language()))))


def grouping(picked) -> list | None:
    """The picked runs as groups of repeats, when the reader groups them: runs that
    differ only in the settings named (the seed, by default) are one group."""
    if len(picked) < 2:
        return None
    seed("launcher_group", "group", flag, False)
    grouped = st.toggle(t("launcher.group.on"), key="launcher_group", value=seeded("launcher_group"),
                        help=t("launcher.group.help"))
    publish("group", grouped, False, encode_flag)
    if not grouped:
        publish("repeat", None, None)
        return None
    heading = compare_headings()
    choices = list(dict.fromkeys([*DEFAULT_IGNORED, *differing_settings(picked)]))
    seed("launcher_group_ignore", "repeat", some_of(choices), list(DEFAULT_IGNORED))
    st.session_state["launcher_group_ignore"] = [k for k in st.session_state["launcher_group_ignore"] if k in choices]
    ignore = st.multiselect(t("launcher.group.ignore"), choices, format_func=lambda k: heading.get(k, k),
                            key="launcher_group_ignore", default=seeded("launcher_group_ignore"))
    publish("repeat", ignore, list(DEFAULT_IGNORED), join)
    return group_runs(picked, run_settings, ignore)


def group_label(group) -> str:
    """What sets a group apart (``setting=value, …``), and how many runs it holds."""
    heading = compare_headings()
    parts = ", ".join(f"{heading.get(k, k)}={shown_value(k, v)}" for k, v in group.distinct)
    return t("launcher.group.label", what=parts or t("launcher.group.all"), n=len(group.runs))


def group_table(groups) -> None:
    """One row per group: its runs and each result as mean ± standard deviation."""
    def shown(stat, percent: bool) -> str:
        mean, std, n = stat
        if mean is None:
            return "–"
        if percent:
            return f"{mean:.2%}" + (f" ± {std:.2%}" if n > 1 else "")
        return f"{mean:,.1f}" + (f" ± {std:,.1f}" if n > 1 else "")

    heading = compare_headings()
    rows = []
    for g in groups:
        stats = result_stats(g)
        rows.append({t("launcher.group.col.group"): group_label(g), t("launcher.group.col.runs"): len(g.runs),
                     heading["best_accuracy"]: shown(stats["best_accuracy"], True),
                     heading["final_accuracy"]: shown(stats["final_accuracy"], True),
                     heading["samples_per_second"]: shown(stats["samples_per_second"], False),
                     heading["duration_s"]: shown(stats["duration_s"], False),
                     t("launcher.group.col.ids"): ", ".join(g.ids)})
    st.dataframe(rows, hide_index=True, width="stretch")


def startup_text(phase: str, seconds: float) -> str:
    return t("launcher.startup.notice", phase=t(f"launcher.startup.phase.{phase}"), seconds=f"{seconds:.0f}")


def startup_notice(store) -> None:
    """While the training cluster starts: what it is doing, counting; the page redraws once it is ready."""
    starting = lui.cluster_startup(store)
    if starting is None:
        st.rerun()
    st.info(startup_text(*starting), icon=":material/hourglass_top:")


def main() -> None:
    st.title(t("launcher.title"))
    st.write(t("launcher.intro"))
    store, store_error = lui.open_store()
    if store_error:
        st.error(t("launcher.store.unreadable", error=store_error))
    allowed = operator.access_panel("launcher.access.what")
    if store is not None:
        open_deep_link(store)
        try:
            lui.warm_on_open(store)  # the training cluster starts now, not at the first launch
        except (StoreError, OSError):
            pass  # the store's or its disk's problem is shown below, where the runs are listed
        if lui.cluster_startup(store) is not None:
            st.fragment(startup_notice, run_every=JOB_POLL_S)(store)
    form_column, runs_column = st.columns([2, 3], gap="large")
    with form_column:
        launch_form(store, allowed)
    if store is not None:
        poll_runs(store, runs_column, allowed)
    compare_section(store)


main()
