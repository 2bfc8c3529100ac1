"""Start the model service with no network but loopback, answer one request,
and report every non-loopback socket its processes opened.

Run inside a fresh network namespace (``unshare -n``; tests/test_service.py
does): there is no route anywhere, so anything the service tried to fetch at
start (a model hub, a usage-statistics ping, a CDN) would fail it; the socket
check catches attempts that fail quietly. Prints one JSON line, with what the
gateway's request log (read through a Serve handle, from this plain thread) holds
and whether the gateway has a direct-ingress port of its own (Serve's
throughput-optimized mode reached the cluster: ``tests/test_service.py`` also runs
this without ``unshare``, in that mode).

    unshare -n python -m bigmodels.harness.offline_service
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time

import torch

from bigmodels.cluster import runtime
from bigmodels.harness.network import cluster_processes, outbound
from bigmodels.harness.server import free_port
from bigmodels.runs.sources import shipped_source
from bigmodels.serving import client, service
from bigmodels.serving.store import ServiceStore



def main() -> int:
    # a namespace made by ``unshare -n`` starts with loopback down
    subprocess.run(["ip", "link", "set", "lo", "up"], check=False, capture_output=True)
    home = tempfile.mkdtemp(prefix="bigmodels-offline-")
    result: dict = {}
    cluster = None
    try:
        cluster = runtime.start_embedded(home, num_cpus=2)
        url = service.start(home, free_port())
        service.deploy(shipped_source("cnn"), home=home)
        _, key = ServiceStore(home).create_key("offline")
        digit = torch.zeros(28, 28)
        digit[5:23, 13:15] = 1.0
        reply = client.predict_pixels(url, key, "cnn", digit)
        time.sleep(2)  # anything that phones home on a timer after start gets a moment to try
        result = {"status": reply.status, "label": reply.body.get("predictions", [{}])[0].get("label"),
                  "outbound": outbound(cluster_processes(cluster.pid)),
                  "logged": service.metrics(home, window_s=60, model="cnn").total,
                  "direct_ingress": service.direct_url(home) is not None}
    except Exception as exc:  # reported, not raised: the test reads the JSON
        result = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        try:
            service.shutdown(home)
        except Exception:  # the JSON line above is the report; a failed shutdown must not replace it
            pass
        runtime.disconnect()
        if cluster is not None:
            runtime.stop_embedded(home, cluster.pid)
        shutil.rmtree(home, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
