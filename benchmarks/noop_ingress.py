"""A no-op with the gateway's shape -- a FastAPI ingress on Ray Serve -- for
``benchmarks/serve_throughput.py``'s ceiling.

(Its own module, without ``from __future__ import annotations``: FastAPI must see
the route's real ``Request`` annotation, as in ``bigmodels.serving.deployments``.)
"""
from fastapi import FastAPI, Request
from ray import serve

noop_api = FastAPI()


@serve.deployment(num_replicas=1, max_ongoing_requests=1000, ray_actor_options={"num_cpus": 0.25})
@serve.ingress(noop_api)
class NoOpIngress:
    @noop_api.post("/")
    async def ok(self, request: Request) -> dict:
        await request.body()  # read what was sent, as the gateway does
        return {"ok": True}
