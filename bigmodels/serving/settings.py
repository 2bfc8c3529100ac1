"""Every bound and default of the model service, declared once.

The deploy form, the CLI flags, the gateway's checks and the tests read these;
nothing else spells a number out.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from bigmodels.data.uploads import MAX_UPLOAD_BYTES

# ---------------------------------------------------------------- requests
API_PREFIX = "/v1"
MAX_BODY_BYTES = MAX_UPLOAD_BYTES  # one image or a JSON batch: the uploads' 5 MB cap, refused before it is read
MAX_IMAGES_PER_REQUEST = 64  # a batch request; more is a 413
REQUEST_TIMEOUT_S = 30.0  # a prediction the replicas have not answered by then is a 504, never a hang
BODY_READ_TIMEOUT_S = 10.0  # a body not fully received by then is a 408: a slow sender holds nothing longer
KEY_HEADER = "Authorization"  # "Bearer <key>"; X-API-Key is accepted too
ALT_KEY_HEADER = "X-API-Key"

# ---------------------------------------------------------------- the HTTP proxy
ENV_SERVE_PORT = "BIGMODELS_SERVE_PORT"
DEFAULT_PORT = 8000
HOST = "127.0.0.1"  # loopback: the reverse proxy beside the app exposes /v1/ (deploy/nginx.conf)

# ---------------------------------------------------------------- Ray Serve's mode
# Ray Serve reads these from the environment at ``import ray``, in every process of the cluster:
# set them where the Ray head starts (the environment of the command that starts it) and in the
# process that calls the service. ``benchmarks/serve_throughput.py`` measures each side by side.
SERVE_MODES: dict[str, dict[str, str]] = {
    # Ray's defaults: the Python HTTP proxy, deployments called through Ray actor calls
    "standard": {},
    # Ray's throughput-optimized set: gRPC between deployments and from the proxy, user code and
    # routers on each replica's own event loop, garbage collection frozen after start, and
    # direct ingress (each app's ingress replica also listens on a loopback port of its own;
    # the service's URL stays the proxy's). Ray holds a stopping ingress replica open 30 s for a
    # load balancer to notice; with none in front that is only a 30 s wait at every redeploy.
    "throughput": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "0"},
    # the same, with HAProxy in place of the Python proxy on the service's port (Debian's
    # ``haproxy``). Not for this service as it is: Ray binds HAProxy's stats (8404) and metrics
    # (9101) ports to every interface, and its files to fixed paths under /tmp
    "haproxy": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "0",
                "RAY_SERVE_ENABLE_HA_PROXY": "1"},
}
DEFAULT_SERVE_MODE = "standard"  # what the service runs in unless its environment says otherwise

# ---------------------------------------------------------------- keys
DEFAULT_RATE_PER_S = 50.0  # requests per second per key (token bucket) ...
DEFAULT_BURST = 100  # ... with this many at once
MAX_RATE_PER_S = 10_000.0
DEFAULT_QUOTA_IMAGES = 1_000_000  # images per key over its lifetime; 0 = none
KEY_CACHE_S = 1.0  # the gateway re-reads keys and writes metered usage this often: a revocation bites within a second
INVALID_KEY_DELAY_S = 1.0  # a wrong key's 401 waits this long: guessing keys in a loop gets a try a second ...
MAX_DELAYED_401 = 256  # ... on up to this many connections at once (past it: at once), far below the gateway's room
MAX_KEY_NAME = 60


@dataclass(frozen=True)
class Bound:
    low: float
    high: float
    default: float

    def check(self, value: float) -> bool:
        return self.low <= value <= self.high


# ---------------------------------------------------------------- deployments
REPLICAS = Bound(1, 4, 1)
MAX_BATCH = Bound(1, 256, 32)
BATCH_WAIT_MS = Bound(0, 200, 5)
AUTOSCALE_TARGET_ONGOING = 4  # requests in flight per replica that autoscaling aims for
DEVICES = ("cpu", "cuda")
REPLICA_CPUS = 0.5  # a replica's CPU reservation (Ray scheduling, not a cap) ...
GATEWAY_CPUS = 0.25  # ... and the gateway's: two replicas and the gateway fit in two cores, with room for training
REPLICA_GPUS = 1  # a replica on device "cuda" reserves a whole GPU
DEPLOY_TIMEOUT_S = 120.0  # replicas not all up by then: the deploy is rolled back, never left "deploying"

# ---------------------------------------------------------------- load generator
# By default the load generator finds the service's capacity: a closed loop, LOAD_CONCURRENCY
# requests in flight, each sent as soon as one is answered. A fixed offered rate (open loop)
# is the other mode: at a rate past the capacity every setup saturates alike.
LOAD_MODES = ("capacity", "rate")  # as fast as answered (the default), or a fixed offered rate
LOAD_RATE = Bound(1, 2000, 50)  # requests per second offered, in the fixed-rate mode
LOAD_DURATION_S = Bound(1, 60, 10)
LOAD_CONCURRENCY = Bound(1, 64, 32)  # in flight: 32 keeps a batching replica's batches full here
LOAD_BATCH = Bound(1, MAX_IMAGES_PER_REQUEST, 1)

# ---------------------------------------------------------------- the gateway
GATEWAY_MAX_ONGOING = 1000  # requests the gateway's one replica holds at once (Serve's max_ongoing_requests) ...
MAX_OPEN_PER_KEY = 2 * int(LOAD_CONCURRENCY.high)  # ... and one key's share of them: more is a 429 at once,
# so one key (slow bodies, a runaway client) can never fill the gateway for the others; the load
# generator at its highest concurrency, and the sandbox beside it on the app's key, stay within it
assert MAX_OPEN_PER_KEY < GATEWAY_MAX_ONGOING

# ---------------------------------------------------------------- metrics
METRICS_WINDOW_S = 120  # the gateway keeps this much request history
METRICS_MAX_RECORDS = 200_000


@dataclass(frozen=True)
class DeploySettings:
    """How one model source is served."""

    replicas: int = int(REPLICAS.default)
    max_batch_size: int = int(MAX_BATCH.default)
    batch_wait_ms: float = BATCH_WAIT_MS.default
    autoscale: bool = False  # replicas become the maximum; Serve scales between 1 and it by load
    device: str = "cpu"

    def problems(self) -> list[tuple[str, dict]]:
        """(reason, values) for every setting out of bounds (the page translates them)."""
        found = []
        for name, bound in (("replicas", REPLICAS), ("max_batch_size", MAX_BATCH), ("batch_wait_ms", BATCH_WAIT_MS)):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not bound.check(value):
                found.append(("out_of_bounds", {"name": name, "value": value, "low": bound.low, "high": bound.high}))
        if self.device not in DEVICES:
            found.append(("device", {"value": self.device, "choices": ", ".join(DEVICES)}))
        return found

    def to_dict(self) -> dict:
        return asdict(self)
