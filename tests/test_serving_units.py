"""The model service's parts that need no Ray: keys, limits, payloads, the
predictor, the metrics and the load generator's bounds."""
import base64
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from bigmodels.analysis.explain import answer
from bigmodels.data.digits import prepare
from bigmodels.models.checkpoints import model_from_checkpoint
from bigmodels.models.shipped import weights_path
from bigmodels.serving.limits import RateLimiter, retry_after_header
from bigmodels.serving.loadgen import LoadError, LoadPlan, require_loopback
from bigmodels.serving.metrics import Record, RequestLog, percentile, summarise
from bigmodels.serving.payloads import PayloadError, digits_from_body
from bigmodels.serving.predictor import Predictor
from bigmodels.serving.settings import MAX_BODY_BYTES, MAX_IMAGES_PER_REQUEST, DeploySettings
from bigmodels.serving.store import KeyRequestError, ServiceStore, check_key, hash_key


def png_bytes(array: np.ndarray, kind: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, kind)
    return buffer.getvalue()


def a_one(size: int = 120) -> np.ndarray:
    """Black pen on white paper: a vertical bar (a "1")."""
    image = np.full((size, size), 255, np.uint8)
    image[size // 5: size * 4 // 5, size * 9 // 20: size * 11 // 20] = 0
    return image


# ------------------------------------------------------------------ keys
def test_a_key_is_stored_only_as_its_hash_and_checked_by_it(tmp_path):
    store = ServiceStore(tmp_path)
    record, key = store.create_key("demo")
    assert key.startswith(f"bmk_{record.id}_")
    raw = store.path.read_bytes() + b"".join(p.read_bytes() for p in store.folder.glob("*-wal"))
    assert key.encode() not in raw and key.split("_", 2)[2].encode() not in raw  # never in clear on disk
    assert hash_key(key).encode() in raw
    known = store.key_hashes()
    assert check_key(key, known)[0] == "ok" and check_key(key, known)[1].id == record.id
    assert check_key(None, known) == ("missing", None)
    assert check_key("", known) == ("missing", None)
    assert check_key("nonsense", known) == ("invalid", None)
    wrong_secret = key[:-1] + ("A" if key[-1] != "A" else "B")  # right id, wrong secret
    assert check_key(wrong_secret, known) == ("invalid", None)
    assert store.revoke_key(record.id) and not store.revoke_key(record.id)
    verdict, revoked = check_key(key, store.key_hashes())
    assert verdict == "revoked" and revoked.revoked


def test_key_requests_are_validated(tmp_path):
    store = ServiceStore(tmp_path)
    for kwargs, reason in (({"name": " "}, "name"), ({"name": "x" * 61}, "name"), ({"name": "a", "rate_per_s": 0}, "rate"),
                           ({"name": "a", "quota_images": -1}, "quota"), ({"name": "a", "burst": 0}, "burst")):
        with pytest.raises(KeyRequestError) as err:
            store.create_key(**kwargs)
        assert err.value.reason == reason
    assert store.keys() == []


def test_usage_is_metered_per_key_and_model(tmp_path):
    store = ServiceStore(tmp_path)
    store.add_usage([("k1", "cnn", 1, 4, 2.5), ("k1", "lstm", 1, 1, 1.0)])
    store.add_usage([("k1", "cnn", 2, 2, 0.5)])
    usage = {(u.key_id, u.model): (u.requests, u.images, u.compute_ms) for u in store.usage()}
    assert usage == {("k1", "cnn"): (3, 6, 3.0), ("k1", "lstm"): (1, 1, 1.0)}
    assert store.images_used() == {"k1": 7}


# ------------------------------------------------------------------ limits
def test_token_bucket_allows_the_burst_then_the_rate():
    limiter = RateLimiter()
    assert all(limiter.take("k", 2.0, 3, now=100.0) == 0 for _ in range(3))
    wait = limiter.take("k", 2.0, 3, now=100.0)
    assert wait == pytest.approx(0.5)
    assert retry_after_header(wait) == "1"
    assert limiter.take("k", 2.0, 3, now=100.5) == 0  # one token back after 1/rate s
    assert limiter.take("other", 2.0, 3, now=100.5) == 0  # buckets are per key


def test_quota_reservations_are_atomic_across_threads_and_connections(tmp_path):
    """40 threads (each its own store connection, as the gateway's and the app's are) reserve one
    image each on a 5-image quota: exactly 5 get one. A refund gives the images back, and a key
    without a quota is never refused."""
    import threading

    store = ServiceStore(tmp_path)
    small, _ = store.create_key("five", quota_images=5)
    free, _ = store.create_key("none", quota_images=0)
    got, start = [], threading.Barrier(40)

    def reserve() -> None:
        start.wait()
        got.append(ServiceStore(tmp_path).reserve_images(small.id, 1))

    threads = [threading.Thread(target=reserve) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(got) == [False] * 35 + [True] * 5
    assert not store.reserve_images(small.id, 1)
    store.refund_images(small.id, 2)
    assert store.reserve_images(small.id, 2) and not store.reserve_images(small.id, 1)
    assert not store.reserve_images(small.id + "x", 1)  # an unknown key reserves nothing
    assert all(store.reserve_images(free.id, 64) for _ in range(100))


def test_a_store_made_before_reservations_counts_what_each_key_used(tmp_path):
    """A service store of the first schema (usage metered, no reservations) opens with each
    key's reserved images set to what it used, so an upgrade does not reset a quota."""
    import sqlite3

    folder = tmp_path / "serving"
    folder.mkdir()
    db = sqlite3.connect(folder / "service.sqlite")
    db.executescript("""
        CREATE TABLE keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, hash TEXT NOT NULL, created_at REAL NOT NULL,
            revoked_at REAL, rate_per_s REAL NOT NULL, burst INTEGER NOT NULL, quota_images INTEGER NOT NULL);
        CREATE TABLE usage (key_id TEXT NOT NULL, model TEXT NOT NULL, requests INTEGER NOT NULL DEFAULT 0,
            images INTEGER NOT NULL DEFAULT 0, compute_ms REAL NOT NULL DEFAULT 0, last_at REAL,
            PRIMARY KEY (key_id, model));""")  # the first schema's keys and usage, as shipped
    db.execute("INSERT INTO keys VALUES ('k1', 'old', 'h', 0, NULL, 1, 1, 10)")
    db.execute("INSERT INTO usage VALUES ('k1', 'cnn', 2, 8, 1.0, 0)")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    store = ServiceStore(tmp_path)
    assert store.reserve_images("k1", 2) and not store.reserve_images("k1", 1)


# ------------------------------------------------------------------ payloads
def test_an_image_goes_through_the_sandboxs_own_preprocessing():
    image = a_one()
    got = digits_from_body("image/png", png_bytes(image))
    assert len(got) == 1 and torch.equal(got[0], prepare(image, "mnist"))
    sniffed = digits_from_body("application/octet-stream", png_bytes(image, "JPEG"))
    assert sniffed[0].shape == (28, 28)


def test_json_pixels_single_batch_and_base64():
    digit = torch.zeros(28, 28)
    digit[5:20, 13:15] = 1.0
    one = digits_from_body("application/json", json.dumps({"pixels": digit.tolist()}).encode())
    assert len(one) == 1 and torch.equal(one[0], digit)
    as_bytes = digits_from_body("application/json", json.dumps({"pixels": (digit * 255).int().tolist()}).encode())
    assert torch.allclose(as_bytes[0], digit)  # 0-255 is scaled to [0, 1]
    batch = digits_from_body("application/json; charset=utf-8", json.dumps({"pixels": [digit.tolist()] * 3}).encode())
    assert len(batch) == 3
    encoded = base64.b64encode(png_bytes(a_one())).decode()
    images = digits_from_body("application/json", json.dumps({"images": [encoded, "data:image/png;base64," + encoded]}).encode())
    assert len(images) == 2 and torch.equal(images[0], images[1])


@pytest.mark.parametrize("content_type, body, status, reason", [
    ("text/plain", b"hello", 415, "unsupported_media_type"),
    (None, b"hello", 415, "unsupported_media_type"),
    ("image/png", b"not an image at all", 415, "not_image"),
    ("image/png", b"", 400, "empty"),
    ("application/json", b"{not json", 400, "bad_json"),
    ("application/json", b"[1, 2]", 400, "bad_json"),
    ("application/json", b'{"pixels": [[1, 2], [3]]}', 400, "bad_pixels"),
    ("application/json", json.dumps({"pixels": [[0.5] * 28] * 27}).encode(), 400, "bad_pixels"),
    ("application/json", json.dumps({"pixels": [[-1] * 28] * 28}).encode(), 400, "bad_pixels"),
    ("application/json", json.dumps({"pixels": [[300] * 28] * 28}).encode(), 400, "bad_pixels"),
    ("application/json", json.dumps({"pixels": [[True] * 28] * 28}).encode(), 400, "bad_pixels"),
    ("application/json", b'{"pixels": [[NaN]]}', 400, "bad_pixels"),
    ("application/json", b'{"image": "%%%"}', 400, "bad_base64"),
    ("application/json", b'{"images": []}', 400, "bad_json"),
    ("application/json", b'{"image": "x", "pixels": []}', 400, "bad_json"),
    ("application/json", json.dumps({"pixels": [[[0] * 28] * 28] * (MAX_IMAGES_PER_REQUEST + 1)}).encode(),
     413, "too_many_images"),
    ("image/png", b"\0" * (MAX_BODY_BYTES + 1), 413, "too_large"),
])
def test_bad_payloads_are_refused_with_a_status_and_a_reason(content_type, body, status, reason):
    with pytest.raises(PayloadError) as err:
        digits_from_body(content_type, body)
    assert (err.value.status, err.value.reason) == (status, reason)
    assert err.value.body()["message"]


def test_a_deeply_nested_json_body_is_a_400_not_a_crash():
    """Nesting deeper than the parser's recursion limit (a 200 KB body) was a RecursionError: a 500."""
    for body in (b'{"pixels": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", b"[" * 100_000):
        with pytest.raises(PayloadError) as err:
            digits_from_body("application/json", body)
        assert err.value.status == 400 and err.value.reason == "bad_json"


def test_a_blank_image_and_a_decompression_bomb_are_refused():
    with pytest.raises(PayloadError) as err:
        digits_from_body("image/png", png_bytes(np.full((50, 50), 255, np.uint8)))
    assert (err.value.status, err.value.reason) == (400, "blank")
    bomb = io.BytesIO()
    Image.new("1", (5000, 5000)).save(bomb, "PNG")  # 25 MP in a few KB
    with pytest.raises(PayloadError) as err:
        digits_from_body("image/png", bomb.getvalue())
    assert (err.value.status, err.value.reason) == (413, "too_many_pixels")


# ------------------------------------------------------------------ predictor
def test_the_predictor_answers_as_the_sandbox_does():
    predictor = Predictor(str(weights_path("cnn")))
    digit = prepare(a_one(), "mnist")
    predictions, compute_ms = predictor.predict([digit, digit])
    sandbox = answer(model_from_checkpoint(weights_path("cnn")), digit, repeats=1)
    assert predictions[0].label == predictions[1].label == sandbox.predicted
    assert predictions[0].probabilities == pytest.approx(list(sandbox.probabilities), abs=1e-5)
    assert compute_ms > 0


# ------------------------------------------------------------------ metrics
def test_summary_of_the_request_log():
    log = RequestLog(window_s=60)
    now = 1000.0
    for i in range(10):
        log.add(Record(now - 5 + i * 0.4, "cnn", 200, 10.0 + i, images=1, batch_size=1 + i % 2))
    log.add(Record(now - 1, "", 401, 1.0))
    log.add(Record(now - 0.5, "cnn", 503, 2.0))
    summary = summarise(log.since(0), now, window_s=10)
    assert summary.total == 12 and summary.ok == 10
    assert summary.errors == {401: 1, 503: 1}
    assert summary.batch_sizes == {1: 5, 2: 5}
    assert sum(summary.requests_per_s) == 12 and len(summary.requests_per_s) == 10
    assert summary.overall["p50_ms"] == pytest.approx(14.5)
    assert summarise(log.since(0), now, 10, model="cnn").errors == {503: 1}
    log.add(Record(now + 100, "cnn", 200, 1.0))  # older than the window is dropped
    assert len(log.since(0)) == 1


def test_percentile():
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile(list(map(float, range(101))), 99) == pytest.approx(99.0)


# ------------------------------------------------------------------ settings and the load generator
def test_deploy_settings_bounds():
    assert DeploySettings().problems() == []
    reasons = [values.get("name", reason) for reason, values in
               DeploySettings(replicas=0, max_batch_size=1000, batch_wait_ms=-1, device="tpu").problems()]
    assert reasons == ["replicas", "max_batch_size", "batch_wait_ms", "device"]


def test_a_deploy_that_cannot_fit_is_refused_with_the_numbers():
    from bigmodels.serving.service import room_problem
    from bigmodels.serving.settings import REPLICA_CPUS

    assert room_problem(DeploySettings(replicas=4), {"CPU": 2.0, "GPU": 0.0}) is None  # exactly fits
    reason, values = room_problem(DeploySettings(replicas=4), {"CPU": 1.75})
    assert reason == "no_room" and values == {"resource": "CPU", "asked": 4 * REPLICA_CPUS, "free": 1.75, "replicas": 4}
    assert room_problem(DeploySettings(replicas=4, autoscale=True), {"CPU": 0.5}) is None  # autoscaling starts one
    assert room_problem(DeploySettings(device="cuda"), {"CPU": 2.0})[1]["resource"] == "GPU"


def test_the_load_generator_only_targets_loopback_and_is_bounded():
    require_loopback("http://127.0.0.1:8000/v1/models/cnn/predict")
    require_loopback("http://localhost:8000/")
    for url in ("http://10.0.0.1/", "http://192.168.1.1:8000/", "http://8.8.8.8/", "ftp://127.0.0.1/", "nonsense"):
        with pytest.raises(LoadError):
            require_loopback(url)
    with pytest.raises(LoadError) as err:
        LoadPlan("http://127.0.0.1:1/", "k", b"", rate=10**6).check()
    assert err.value.values["name"] == "rate"
    with pytest.raises(LoadError):
        LoadPlan("http://127.0.0.1:1/", "k", b"", duration_s=3600).check()


def test_only_this_machine_counts_as_local():
    from bigmodels.harness.network import is_local

    own = {"192.0.2.2"}
    assert is_local("127.0.0.1", own) and is_local("::1", own) and is_local("::ffff:127.0.0.1", own)
    assert is_local("192.0.2.2", own) and not is_local("192.0.2.3", own)
    assert not is_local("8.8.8.8", own) and not is_local("::ffff:8.8.8.8", own) and not is_local("2001:db8::1", own)


def test_a_load_run_stops_at_its_duration_even_when_the_target_is_slow():
    """A server that answers 5 requests/s, offered 200/s with 2 in flight for 1 s:
    the run ends after about 1 s (plus what is in flight), not after 200 requests."""
    import http.server
    import threading
    import time

    from bigmodels.serving.loadgen import run_load

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(0.2)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):  # http.server's per-request line on stderr: not wanted in test output
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        started = time.monotonic()
        report = run_load(LoadPlan(f"http://127.0.0.1:{server.server_port}/", "k", b"{}", rate=200, duration_s=1,
                                   concurrency=2))
        took = time.monotonic() - started
    finally:
        server.shutdown()
    assert took < 3 and report.sent < 50 and report.ok == report.sent > 0
    assert report.late_starts > 0 and report.latency(99) >= 200


def test_the_default_load_is_a_closed_loop_that_keeps_its_requests_in_flight():
    """No rate: each request is sent as soon as one is answered, so the server always has
    ``concurrency`` in flight (never more) and requests/s is what it sustains."""
    import http.server
    import threading
    import time

    from bigmodels.serving.loadgen import run_load

    seen = {"now": 0, "most": 0, "at_most": []}
    lock = threading.Lock()

    class Timed(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                seen["now"] += 1
                seen["most"] = max(seen["most"], seen["now"])
                seen["at_most"].append(seen["now"])
            time.sleep(0.05)
            with lock:
                seen["now"] -= 1
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Timed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        plan = LoadPlan(f"http://127.0.0.1:{server.server_port}/", "k", b"{}", duration_s=1.5, concurrency=4)
        assert plan.rate is None
        report = run_load(plan)
    finally:
        server.shutdown()
    assert seen["most"] == 4 and report.ok == report.sent and report.late_starts == 0
    # after the first round the server is never short of a request for long: most arrivals find 3 others
    assert sorted(seen["at_most"])[len(seen["at_most"]) // 2] >= 3
    assert report.sent >= 4 * 1.5 / 0.05 / 3  # a closed loop is bounded by answers, not by a schedule


def test_cost_per_million_predictions():
    from bigmodels.analysis.calculators import cost_per_million_predictions
    from bigmodels.base.problems import ConfigError

    assert cost_per_million_predictions(1000.0, 3.6) == pytest.approx(1.0)  # 3.6 M predictions per US$3.60 hour
    assert cost_per_million_predictions(10.0, 0.0) == 0.0
    for rate, price in ((0, 1.0), (-5, 1.0), (10, -1.0), (float("nan"), 1.0)):
        with pytest.raises(ConfigError):
            cost_per_million_predictions(rate, price)


def test_the_service_figures_and_tables(tmp_path):
    from bigmodels.figures.service import (
        batch_figure, errors_figure, key_rows, latency_figure, load_run_label, load_runs_figure, throughput_figure,
    )

    summary = summarise([{"at": 99.5, "model": "cnn", "status": 200, "latency_ms": 5.0, "images": 1, "batch_size": 4,
                          "replica": "r"}, {"at": 99.6, "model": "", "status": 429, "latency_ms": 1.0, "images": 0,
                                            "batch_size": 0, "replica": ""}], now=100.0, window_s=10)
    labels = {k: k for k in ("rps", "throughput_title", "seconds_ago", "latency_title", "ms", "batch_title",
                             "batch_size", "requests", "errors_title", "status", "images_per_s", "p99", "runs_title",
                             "latency_axis")}
    assert list(throughput_figure(summary, labels).data[0].y)[-1] == 2
    assert [t.name for t in latency_figure(summary, labels).data] == ["p50", "p95", "p99"]
    assert list(batch_figure(summary, labels).data[0].x) == ["4"]
    assert list(errors_figure(summary, labels).data[0].x) == ["429"]
    label = load_run_label("cnn", DeploySettings(replicas=2, max_batch_size=32, batch_wait_ms=5).to_dict(), 1, 32)
    assert label == "cnn · 2× · b32/5ms · 1img · 32∥"
    assert load_run_label("cnn", DeploySettings().to_dict(), 1, 8, rate=50).endswith("· 50/s")
    runs = [{"label": label, "images_per_s": 100.0, "p50_ms": 8.0, "p99_ms": 20.0},
            {"label": "no answer", "images_per_s": 0.0, "p50_ms": None, "p99_ms": None}]
    (point,) = load_runs_figure(runs, labels).data  # throughput against latency; a run with no answers is left off
    assert list(point.y) == [100.0] and list(point.x) == [8.0] and list(point.error_x.array) == [12.0]
    store = ServiceStore(tmp_path)
    used, _ = store.create_key("used")
    store.create_key("idle")
    store.add_usage([(used.id, "cnn", 2, 3, 1.5), (used.id, "lstm", 1, 1, 0.5)])
    store.revoke_key(used.id)
    headings = {k: k for k in ("name", "id", "status", "rate", "quota", "model", "requests", "images", "compute_ms")}
    rows = key_rows(store.keys(), store.usage(), headings, {"active": "on", "revoked": "off"})
    assert [(r["name"], r["model"], r["images"], r["status"]) for r in rows] == [
        ("used", "cnn", 3, "off"), ("used", "lstm", 1, "off"), ("idle", "", 0, "on")]


def test_load_runs_are_kept_with_the_service_newest_twenty(tmp_path):
    """The side-by-side runs survive a reload and another visitor's page: they live in the
    service store, the newest MAX_LOAD_RUNS of them, status counts keyed by status again."""
    from bigmodels.serving.store import MAX_LOAD_RUNS

    store = ServiceStore(tmp_path)
    for i in range(MAX_LOAD_RUNS + 5):
        store.add_load_run({"label": f"run {i}", "rate": None, "concurrency": 32, "images_per_s": float(i),
                            "statuses": {200: i, 503: 1}})
    runs = ServiceStore(tmp_path).load_runs()
    assert [r["label"] for r in runs] == [f"run {i}" for i in range(5, MAX_LOAD_RUNS + 5)]
    assert runs[-1]["statuses"] == {200: MAX_LOAD_RUNS + 4, 503: 1}
    store.clear_load_runs()
    assert store.load_runs() == []


# ------------------------------------------------------------------ the gateway's API, without Ray
def test_an_unexpected_error_is_a_json_500_that_never_escapes_the_api():
    """Serve answers a plain-text "Internal Server Error" for any exception that leaves the
    gateway's app; Starlette re-raises one even after a catch-all handler has answered. So
    the gateway's catch-all answers JSON and nothing escapes the ASGI call."""
    from bigmodels.serving.deployments import api
    from tests.conftest import run_async

    path = "/__units_raise"
    if not any(getattr(r, "path", None) == path for r in api.routes):
        @api.get(path, include_in_schema=False)
        async def _raise():
            raise LookupError("a bug")
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"", "headers": [],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    run_async(api(scope, receive, send))  # raised LookupError here before (asyncio.run fails after a browser test)
    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    assert start["status"] == 500 and json.loads(body)["error"] == "internal"


def test_a_model_call_that_fails_in_any_way_is_a_503_with_retry_after():
    from bigmodels.serving.deployments import unavailable

    for exc in (RuntimeError("x"), KeyError("replica"), LookupError(), Exception("DeploymentUnavailableError")):
        reply = unavailable(exc)
        assert reply.status_code == 503 and reply.headers["retry-after"] == "1"
        assert json.loads(reply.body)["error"] == "unavailable"


# ------------------------------------------------------------------ the app's own key
def test_each_app_process_keeps_its_own_key_and_a_dead_ones_is_revoked(tmp_path):
    """Two app processes on one home (an nginx pool): the second's key does not revoke the
    first's (a load test of the first got 321 403s when the second used "via the API"); a
    third, once the first has ended, revokes the first's key and only it."""
    import subprocess
    import sys

    from tests.conftest import REPO

    script = ("import sys\nfrom bigmodels.app.service import app_key\n"
              "print(app_key(sys.argv[1]), flush=True)\nsys.stdin.read()\n")

    def app_process() -> tuple[subprocess.Popen, str]:
        proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
        return proc, proc.stdout.readline().strip()

    store = ServiceStore(tmp_path)
    first, first_key = app_process()
    second, second_key = app_process()
    try:
        assert first_key.startswith("bmk_") and second_key.startswith("bmk_") and first_key != second_key
        known = store.key_hashes()
        assert check_key(first_key, known)[0] == "ok" and check_key(second_key, known)[0] == "ok"
        first.communicate("", timeout=60)
        third, third_key = app_process()
        third.communicate("", timeout=60)
        known = store.key_hashes()
        assert check_key(first_key, known)[0] == "revoked"
        assert check_key(second_key, known)[0] == "ok" and check_key(third_key, known)[0] == "ok"
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.communicate("", timeout=60)
