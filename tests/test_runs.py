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
from bigmodels.app.launcher import checkpoint_problem, parse_form
from bigmodels.formatting import format_duration
from bigmodels.models.sources import list_sources
from bigmodels.models.registry import create_model
from bigmodels.figures.runs import (
    accuracy_figure, comparison_rows, epochs_csv, loss_figure, parallel_coordinates, smooth, steps_csv, thin,
)
from bigmodels.runs.recorder import EventRecorder, StopWatch
from bigmodels.runs.store import RunStateError, RunStore, StoreError, run_history
from bigmodels.models.sources import finished_run_sources
from bigmodels.problems import ConfigError
from bigmodels.train.engine import TrainEvent
from bigmodels.train.config import default_config
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


def finish_run(store, run_id, accuracies=(0.9, 0.95), status="succeeded"):
    """Do what a worker does: claim, record epochs, write the checkpoint, finish."""
    run = store.claim_next("cpu", "test-worker", 1)
    assert run.id == run_id
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
    store.claim_next("cpu", "w", 1)
    store.finish(run.id, "failed", "boom")
    assert not submit(store, cfg()).cached


# ------------------------------------------------------------------ claim
def test_claims_are_atomic_and_oldest_first(store):
    ids = [submit(store, cfg(seed=i)).run.id for i in range(3)]
    got, barrier = [], threading.Barrier(6)

    def claimer(i):
        barrier.wait()
        run = RunStore(store.home).claim_next("cpu", f"w{i}", 100 + i)
        if run is not None:
            got.append(run.id)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(got) == sorted(ids)  # each run claimed exactly once
    assert all(r.status == "running" and r.attempts == 1 for r in store.list_runs())
    assert store.claim_next("cpu", "late", 1) is None


def test_claim_skips_runs_the_worker_cannot_take(store):
    first = submit(store, cfg(seed=1)).run
    second = submit(store, cfg(seed=2)).run
    run = store.claim_next("cpu", "w", 1, can_run=lambda r: r.id != first.id)
    assert run.id == second.id and store.get(first.id).status == "queued"
    assert store.claim_next("cuda:0", "w", 1) is None  # another device's queue


# ---------------------------------------------------------------- control
def test_cancel_resume_delete_follow_the_run_state(store):
    queued = submit(store, cfg(seed=1)).run
    assert store.request_cancel(queued.id) == "cancelled"
    assert store.get(queued.id).status == "cancelled"
    with pytest.raises(RunStateError):
        store.request_cancel(queued.id)

    running = submit(store, cfg(seed=2)).run
    store.claim_next("cpu", "w", 1)
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
    store.claim_next("cpu", "w", 1)
    flag = []
    watch = StopWatch(store, run.id, every=0.0, also=lambda: bool(flag))
    assert not watch()
    store.request_cancel(run.id)
    assert watch()
    other = submit(store, cfg(seed=3)).run
    store.claim_next("cpu", "w", 1)
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
    store.claim_next("cpu", "w", 1)
    recorder = EventRecorder(store, run.id, 64)
    recorder(TrainEvent("start", 0, 0, 64, {}))
    for step in range(1, 41):
        recorder(TrainEvent("step", 1 if step <= 32 else 2, step, 64, {"loss": 1.0, "lr": 0.1}))
        if step == 32:
            recorder(TrainEvent("epoch", 1, 32, 64, record(1, 0.9)))
    recorder.flush()
    store.finish(run.id, "interrupted", "killed")
    store.resume(run.id)
    store.claim_next("cpu", "w", 1)
    EventRecorder(store, run.id, 64)(TrainEvent("start", 1, 32, 64, {"resumed": True}))
    after = store.get(run.id)
    assert [s["step"] for s in store.steps(run.id)] == list(range(1, 33))
    assert after.step == 32 and after.start_step == 32 and after.best_accuracy == 0.9 and after.attempts == 2


def test_progress_and_eta(store):
    run = submit(store, cfg()).run
    store.claim_next("cpu", "w", 1)
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
    store.claim_next("cpu", "w", 1)
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
    from bigmodels.models.sources import load_model

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
    assert len(fig.data) == 6  # raw + smoothed + test loss, per run
    assert max(fig.data[1].x) == pytest.approx(2.0)  # x is in epochs
    acc = accuracy_figure([(a.id, store.epochs(a.id))], {"x": "epoch", "y": "acc"})
    assert list(acc.data[0].y) == [0.9, 0.95]
    rows = comparison_rows([a, b])
    assert rows[1]["lr"] == 1e-3 and rows[1]["batch_size"] == 128 and rows[0]["best_accuracy"] == 0.95
    par = parallel_coordinates([a, b], {k: k for k in ("model", "optimizer", "log_lr", "batch_size", "epochs",
                                                       "weight_decay", "label_smoothing", "accuracy")})
    dims = {d.label: d for d in par.data[0].dimensions}
    assert list(dims["log_lr"].values) == pytest.approx([-2, -3]) and list(dims["accuracy"].values) == [0.95, 0.85]
    table = list(csv.DictReader(io.StringIO(epochs_csv([(a, store.epochs(a.id)), (b, store.epochs(b.id))]))))
    assert len(table) == 4 and table[3]["run"] == b.id and float(table[3]["test_accuracy"]) == 0.85
    assert table[0]["batch_size"] == "64"
    steps = list(csv.DictReader(io.StringIO(steps_csv([(a, store.steps(a.id))]))))
    assert len(steps) == 64 and steps[0]["step"] == "1"


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
    from bigmodels.models.sources import list_sources, live_run_sources
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
