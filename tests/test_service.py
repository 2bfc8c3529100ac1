"""The model service on Ray Serve, end to end over HTTP on loopback: the API,
keys and limits, payload refusals, metering, and its faults (a replica killed
under load, a flood of bad keys, an oversized body, no network).

One service for the module on the session's Ray cluster (Serve's controller,
proxy, the gateway and the CNN's replicas: ~20 s to start on 2 cores); it is
shut down at the end so the cluster is left as found.
"""
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from bigmodels.analysis.explain import answer
from bigmodels.data.digits import prepare
from bigmodels.harness.server import free_port
from bigmodels.harness.network import cluster_processes, outbound
from bigmodels.models.checkpoints import checkpoint_digest, model_from_checkpoint
from bigmodels.models.shipped import weights_path
from bigmodels.runs.sources import shipped_source
from bigmodels.serving import client, service
from bigmodels.serving.loadgen import LoadPlan, run_load
from bigmodels.serving.settings import KEY_CACHE_S, MAX_BODY_BYTES, DeploySettings
from bigmodels.serving.store import ServiceStore
from tests.conftest import REPO, unavailable



def a_one() -> np.ndarray:
    image = np.full((120, 120), 255, np.uint8)
    image[24:96, 54:66] = 0
    return image


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


DIGIT = prepare(a_one(), "mnist")


@pytest.fixture(scope="module")
def served(ray_cluster, tmp_path_factory):
    home = tmp_path_factory.mktemp("service-home")
    url = service.start(home, free_port())
    service.deploy(shipped_source("cnn"), DeploySettings(max_batch_size=16, batch_wait_ms=5), home)
    store = ServiceStore(home)
    _, key = store.create_key("tests", rate_per_s=1000, burst=1000)
    yield {"home": home, "url": url, "store": store, "key": key, "cluster": ray_cluster}
    service.shutdown(home)


def predict(served, body: bytes, content_type="application/json", key=None, model="cnn"):
    return client.call(client.predict_url(served["url"], model), "POST", key or served["key"], body, content_type)


def test_models_are_listed_with_their_provenance(served):
    reply = client.list_models(served["url"], served["key"])
    assert reply.status == 200
    (cnn,) = reply.body["models"]
    assert cnn["id"] == "cnn" and cnn["architecture"] == "cnn" and cnn["source"] == "shipped:cnn"
    assert cnn["version"] == checkpoint_digest(weights_path("cnn")) and cnn["accuracy"] > 0.98


def test_png_json_and_batch_answer_what_the_model_answers_in_process(served):
    expected = answer(model_from_checkpoint(weights_path("cnn")), DIGIT, repeats=1)
    by_png = predict(served, png(a_one()), "image/png")
    by_json = client.predict_pixels(served["url"], served["key"], "cnn", DIGIT)
    batch = client.predict_pixels(served["url"], served["key"], "cnn", torch.stack([DIGIT] * 20))  # > max batch 16
    for reply, count in ((by_png, 1), (by_json, 1), (batch, 20)):
        assert reply.status == 200, reply.body
        assert len(reply.body["predictions"]) == count
        for p in reply.body["predictions"]:
            assert p["label"] == expected.predicted and p["model"] == "cnn" and p["latency_ms"] > 0
            assert p["probabilities"] == pytest.approx(list(expected.probabilities), abs=1e-4)


def test_openapi_docs_are_served(served):
    docs = client.call(served["url"] + "/openapi.json")
    assert docs.status == 200 and "/v1/models/{model_id}/predict" in docs.body["paths"]
    page = urllib.request.urlopen(served["url"] + "/docs", timeout=30).read().decode()
    quoted = r"""['"]([^'"]+)['"]"""
    assets = re.findall(r"(?:src|href)=" + quoted, page) + re.findall(r"url: *" + quoted, page)
    assert assets and all(a.startswith("/") and not a.startswith("//") for a in assets), assets  # no other host
    for asset in assets:  # Swagger UI's script, style, icon and the schema, all from the service itself
        with urllib.request.urlopen(served["url"] + asset, timeout=30) as answer:
            assert answer.status == 200 and len(answer.read()) > 0, asset


def test_missing_wrong_and_revoked_keys(served):
    missing = client.call(client.predict_url(served["url"], "cnn"), "POST", None, client.pixels_json(DIGIT),
                          "application/json")
    assert missing.status == 401 and missing.body["error"] == "missing_key"
    wrong = predict(served, client.pixels_json(DIGIT), key="bmk_0123456789ab_" + "x" * 43)
    assert wrong.status == 401 and wrong.body["error"] == "invalid_key"
    record, key = served["store"].create_key("to revoke")
    time.sleep(KEY_CACHE_S + 0.2)
    assert predict(served, client.pixels_json(DIGIT), key=key).status == 200
    served["store"].revoke_key(record.id)
    time.sleep(KEY_CACHE_S + 0.2)
    revoked = predict(served, client.pixels_json(DIGIT), key=key)
    assert revoked.status == 403 and revoked.body["error"] == "revoked_key"


def test_rate_limit_and_quota_answer_429_with_retry_after(served):
    _, slow = served["store"].create_key("slow", rate_per_s=0.2, burst=2)
    _, small = served["store"].create_key("small", quota_images=3)
    time.sleep(KEY_CACHE_S + 0.2)
    statuses = [predict(served, client.pixels_json(DIGIT), key=slow) for _ in range(3)]
    assert [r.status for r in statuses] == [200, 200, 429]
    assert statuses[2].body["error"] == "rate_limited" and int(statuses[2].headers["retry-after"]) >= 1
    assert client.predict_pixels(served["url"], small, "cnn", torch.stack([DIGIT] * 3)).status == 200
    over = client.predict_pixels(served["url"], small, "cnn", DIGIT)
    assert over.status == 429 and over.body["error"] == "quota_exceeded" and "retry-after" in over.headers


def test_bad_payloads_get_json_errors(served):
    cases = [(b"hello", "text/plain", 415), (b"not an image", "image/png", 415), (b"{oops", "application/json", 400),
             (json.dumps({"pixels": [[0] * 5]}).encode(), "application/json", 400)]
    for body, kind, status in cases:
        reply = predict(served, body, kind)
        assert reply.status == status and reply.body["error"] and reply.body["message"], (kind, reply.body)
    unknown = predict(served, client.pixels_json(DIGIT), model="nope")
    assert unknown.status == 404 and unknown.body["error"] == "unknown_model"


def test_an_oversized_body_is_refused_before_it_is_read(served):
    """The 413 arrives while the client has sent only the headers and 1 KB of a
    claimed 100 MB: the gateway decided on Content-Length, reading nothing more."""
    host, port = served["url"].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(f"POST /v1/models/cnn/predict HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {served['key']}\r\n"
                  f"Content-Type: image/png\r\nContent-Length: {100 * MAX_BODY_BYTES}\r\n\r\n".encode() + b"\0" * 1024)
        head = b""
        while b"too_large" not in head:  # the headers and the JSON body may come in separate packets
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
        head = head.decode("latin-1")
    assert head.startswith("HTTP/1.1 413"), head
    assert '"too_large"' in head or "too_large" in head


def test_usage_is_metered_per_key_and_model(served):
    record, key = served["store"].create_key("metered")
    time.sleep(KEY_CACHE_S + 0.2)
    for count in (1, 4):
        assert client.predict_pixels(served["url"], key, "cnn", torch.stack([DIGIT] * count)).status == 200
    service.flush_usage(served["home"])
    (mine,) = [u for u in served["store"].usage() if u.key_id == record.id]
    assert (mine.model, mine.requests, mine.images) == ("cnn", 2, 5) and mine.compute_ms > 0


def test_the_request_log_feeds_the_page_metrics(served):
    assert client.predict_pixels(served["url"], served["key"], "cnn", DIGIT).status == 200
    assert predict(served, b"x", "text/plain").status == 415
    assert predict(served, client.pixels_json(DIGIT), key="bmk_0123456789ab_" + "z" * 43).status == 401
    summary = service.metrics(served["home"], window_s=120)
    assert summary.ok > 0 and summary.batch_sizes and summary.overall["p50_ms"] > 0
    assert 401 in summary.errors and 415 in summary.errors
    (status,) = service.statuses(served["home"])
    assert status.status == "RUNNING" and status.running_replicas == 1


def test_concurrent_one_digit_requests_reach_the_model_as_batches_and_each_gets_its_own_answer(served):
    """The gateway gathers concurrent requests into one call to the replicas: batches
    bigger than one ran, within the maximum, and every answer is its own digit's."""
    since = time.time()
    digits = {label: prepare(a_one() if label == 1 else np.rot90(a_one()).copy(), "mnist") for label in (1, 2)}
    model = model_from_checkpoint(weights_path("cnn"))
    expected = {k: answer(model, d, repeats=1).predicted for k, d in digits.items()}
    assert len(set(expected.values())) == 2  # two digits the model tells apart, so a mix-up would show
    replies: dict[int, list] = {1: [], 2: []}

    def ask(kind: int) -> None:
        replies[kind].append(client.predict_pixels(served["url"], served["key"], "cnn", digits[kind]))

    threads = [threading.Thread(target=ask, args=(1 + i % 2,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for kind, got in replies.items():
        assert len(got) == 16 and all(r.status == 200 for r in got)
        assert {r.body["predictions"][0]["label"] for r in got} == {expected[kind]}
    sizes = [r["batch_size"] for r in service.records(served["home"], since) if r.get("batch_size")]
    assert len(sizes) == 32 and max(sizes) > 1 and max(sizes) <= 16


def test_a_flood_of_bad_keys_does_not_slow_a_valid_client_past_its_limit(served):
    _, key = served["store"].create_key("steady", rate_per_s=10, burst=10)
    time.sleep(KEY_CACHE_S + 0.2)
    url = client.predict_url(served["url"], "cnn")
    flood = LoadPlan(url, "bmk_0123456789ab_" + "y" * 43, client.pixels_json(DIGIT), rate=300, duration_s=6,
                     concurrency=16)
    flooded = {}
    thread = threading.Thread(target=lambda: flooded.update(report=run_load(flood)))
    thread.start()
    time.sleep(1)
    steady = run_load(LoadPlan(url, key, client.pixels_json(DIGIT), rate=5, duration_s=4, concurrency=4))
    thread.join(60)
    assert set(flooded["report"].statuses) == {401}  # every bad key refused, none let through
    assert steady.statuses == {200: steady.sent}  # the valid client: every request answered, none limited
    assert steady.latency(99) < 5000  # answered promptly, not queued behind the flood (generous: 2 busy cores)


def test_a_replica_killed_under_load_is_replaced_and_no_request_hangs(served):
    home = served["home"]
    service.deploy(shipped_source("cnn"), DeploySettings(replicas=2, max_batch_size=16, batch_wait_ms=5), home)
    url = client.predict_url(served["url"], "cnn")
    plan = LoadPlan(url, served["key"], client.pixels_json(DIGIT), rate=30, duration_s=8, concurrency=8, timeout_s=40)
    during = {}
    thread = threading.Thread(target=lambda: during.update(report=run_load(plan)))
    thread.start()
    time.sleep(2)
    replicas = service.replica_actors("cnn")
    assert len(replicas) == 2
    service.kill_replica(replicas[0])
    thread.join(90)
    report = during["report"]
    assert 0 not in report.statuses, report.statuses  # every request got an answer within the timeout
    assert set(report.statuses) <= {200, 500, 502, 503, 504}, report.statuses
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        names = service.replica_actors("cnn")
        (status,) = service.statuses(home)
        if status.running_replicas == 2 and replicas[0] not in names:
            break
        time.sleep(1)
    else:
        pytest.fail("Serve did not replace the killed replica within 120 s")
    after = run_load(LoadPlan(url, served["key"], client.pixels_json(DIGIT), rate=25, duration_s=4, concurrency=8))
    assert after.ok >= 0.99 * after.sent, after.statuses


def test_no_process_of_the_service_holds_an_outbound_socket(served):
    assert outbound(cluster_processes(served["cluster"].pid)) == []


def test_the_cli_starts_the_service_and_prints_the_url(served, capsys):
    from bigmodels.cli import main

    assert main(["serve", "--models", "cnn", "--home", str(served["home"]), "--detach", "--key", "cli"]) == 0
    out = capsys.readouterr().out
    assert served["url"] in out and "/v1/models/cnn/predict" in out and "bmk_" in out


@pytest.mark.cluster  # starts its own head, in its own network namespace
def test_the_service_starts_with_no_network_and_makes_no_outbound_request():
    """In a network namespace with loopback only: start a head, the service and the CNN, answer, and check sockets."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        unavailable("needs root and unshare -n")  # CI runs as root with util-linux
    done = subprocess.run(["unshare", "-n", sys.executable, "-m", "bigmodels.harness.offline_service"],
                          capture_output=True, text=True, timeout=400, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "error" not in result, result
    assert result["status"] == 200 and result["label"] == 1
    assert result["outbound"] == []


def test_the_service_page_shows_deployments_metrics_and_makes_a_key_shown_once(served, monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    from bigmodels.base.access import ENV_TOKEN
    from bigmodels.cluster import runtime

    monkeypatch.setenv("BIGMODELS_HOME", str(served["home"]))
    monkeypatch.setenv(runtime.ENV_RAY_ADDRESS, served["cluster"].address)  # the cluster this process joined
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENV_TOKEN, raising=False)
    at = AppTest.from_file(str(REPO / "pages" / "service.py"), default_timeout=60).run()
    assert not at.exception
    assert any(served["url"] in s.value for s in at.success)
    assert any("**cnn**" in m.value and "shipped:cnn" in m.value for m in at.markdown)
    assert {"p50 latency", "p99 latency", "Replicas running"} <= {m.label for m in at.metric}
    assert any(served["url"] in c.value for c in at.code)  # the snippets carry the real URL
    next(ti for ti in at.text_input if ti.label.startswith("Name")).set_value("from the page")
    next(b for b in at.button if b.label == "Create key").click().run()
    assert not at.exception
    (shown,) = [c.value for c in at.code if c.value.startswith("bmk_")]
    time.sleep(KEY_CACHE_S + 0.2)
    assert client.predict_pixels(served["url"], shown, "cnn", DIGIT).status == 200
    at.run()
    assert not [c for c in at.code if c.value.startswith("bmk_")]  # shown once
    assert shown not in " ".join(str(df.value.to_csv()) for df in at.dataframe)
    # the load generator, as fast as answered (its default): a 2 s run in the background, then its
    # row, the comparison chart and the cost line from the measured capacity
    next(n for n in at.number_input if n.label == "Duration (s)").set_value(2.0)
    next(b for b in at.button if b.label == "Run load").click().run()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any("images/s" in df.value.columns for df in at.dataframe):
        time.sleep(1)
        at.run()
    assert not at.exception
    (runs,) = [df.value for df in at.dataframe if "images/s" in df.value.columns]
    (row,) = runs.to_dict("records")
    # every request is counted; on 2 cores shared with the app a request may time out under load
    assert row["run"].startswith("cnn · ") and row["run"].endswith("· 32∥") and row["sent"] > 10 and row["images/s"] > 0
    assert 0.9 * row["sent"] <= row["answered"] <= row["sent"]
    assert any("per million predictions" in m.value for m in at.markdown)


def test_the_python_snippet_runs_against_the_service(served, tmp_path):
    from bigmodels.serving.snippets import python_snippet

    script = tmp_path / "snippet.py"
    script.write_text(python_snippet(served["url"], "cnn"))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "BIGMODELS_API_KEY": served["key"]})
    assert done.returncode == 0, done.stderr
    label, confidence, *_ = done.stdout.split()
    assert label == "1" and float(confidence) > 0.5


def test_the_sandbox_sends_its_digit_via_the_api_and_shows_both_latencies(served, full_mnist, monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    from bigmodels.data.mnist import ENV_DATA_DIR
    from tests.conftest import mnist_dir

    monkeypatch.setenv("BIGMODELS_HOME", str(served["home"]))
    monkeypatch.setenv(ENV_DATA_DIR, str(mnist_dir()))
    at = AppTest.from_file(str(REPO / "pages" / "sandbox.py"), default_timeout=180)
    for key, value in {"sb_input": "random", "sb_random_index": 0, "sb_via_api": True}.items():  # test digit 0: a 7
        at.session_state[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    (table,) = [df.value for df in at.dataframe if "CNN" in df.value.columns]  # a column per model, a row per quantity
    rows = {row[""]: row for row in table.to_dict("records")}
    assert rows["answer via the API"]["CNN"].startswith("7 (")
    assert rows["API, end to end"]["CNN"].endswith(" ms") and rows["in-process forward pass"]["CNN"].endswith(" ms")
    assert rows["answer via the API"]["LSTM"] == "not deployed in the service"  # only the CNN is


def test_keys_never_reach_the_clusters_logs(served):
    """After requests with good, wrong and revoked keys, no log file of the cluster holds a key."""
    import psutil
    from pathlib import Path

    record, revoked = served["store"].create_key("logged?")
    served["store"].revoke_key(record.id)
    time.sleep(KEY_CACHE_S + 0.2)
    wrong = "bmk_0123456789ab_" + "w" * 43
    for key in (served["key"], wrong, revoked):
        client.predict_pixels(served["url"], key, "cnn", DIGIT)
    time.sleep(1)  # log lines are flushed by their writers
    (temp_dir,) = [a.split("=", 1)[1] for a in psutil.Process(served["cluster"].pid).cmdline() if a.startswith("--temp-dir=")]
    logs = [p for p in Path(temp_dir).glob("session_*/logs/**/*") if p.is_file()]
    assert logs
    for path in logs:
        text = path.read_bytes()
        for key in (served["key"], wrong, revoked):
            assert key.encode() not in text and key.split("_", 2)[2].encode() not in text, path
