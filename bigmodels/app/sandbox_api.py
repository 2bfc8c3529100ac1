"""The sandbox's "via the API": the same digit sent to the model service, and
its end-to-end latency beside the in-process one.

Only the HTTP API is used (with this app's own key), as an outside client
would; the digit sent is exactly the pixels the in-process model read, so the
two answers must agree and only the path differs.
"""
from __future__ import annotations

import streamlit as st

from bigmodels.app.routing import page_link
from bigmodels.app.service import app_key
from bigmodels.app.session import t
from bigmodels.serving import client
from bigmodels.serving.store import ServiceStoreError

API_TIMEOUT_S = 5.0  # a stroke should not wait longer on a service that is down


def api_comparison(readings: dict, chosen: dict, architectures: tuple[str, ...]) -> None:
    """A toggle; when on, each model's answer through the service beside the in-process one."""
    if not st.toggle(t("sandbox.api.toggle"), key="sb_via_api", help=t("sandbox.api.help")) or not readings:
        return
    try:
        url, deployed = client.deployed_models()
    except ServiceStoreError as exc:
        st.error(t("sandbox.api.unreadable", error=exc))
        return
    if url is None:
        st.caption(t("sandbox.api.not_started"))
        page_link("service", t("sandbox.api.service_link"))
        return
    # One column per model and one row per quantity: the answers column is a third of
    # the page, and five columns side by side pushed the latencies out of view.
    quantities = ("api", "end_to_end", "gateway", "in_process")
    table = {q: {"": t(f"sandbox.api.col.{q}")} for q in quantities}
    for arch in architectures:
        reading, source = readings.get(arch), chosen.get(arch)
        if reading is None or source is None:
            continue
        name = t(f"sandbox.arch.short.{arch}")
        model_id = deployed.get(source.id)
        if model_id is None:
            cells = {"api": t("sandbox.api.not_deployed")}
        else:
            reply = client.predict_pixels(url, app_key(), model_id, reading.pixels, timeout=API_TIMEOUT_S)
            if reply.status != 200:
                said = reply.body.get("message") or reply.body.get("error") or str(reply.status)
                cells = {"api": t("sandbox.api.failed", status=reply.status, message=said)}
            else:
                p = reply.body["predictions"][0]
                cells = {"api": t("sandbox.api.answer", digit=p["label"], confidence=max(p["probabilities"])),
                         "end_to_end": f"{reply.seconds * 1000:.1f} ms", "gateway": f"{p['latency_ms']:.1f} ms"}
        cells["in_process"] = f"{reading.answer.latency_ms:.2f} ms"
        for q in quantities:
            table[q][name] = cells.get(q, "–")
    if len(table["api"]) > 1:
        st.dataframe(list(table.values()), hide_index=True, width="stretch")
        st.caption(t("sandbox.api.caption"))
    page_link("service", t("sandbox.api.service_link"))
