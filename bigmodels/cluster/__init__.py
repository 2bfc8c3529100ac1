"""Device sessions on Ray: the cluster, warm sessions on its devices, and the dispatcher that feeds them runs."""

# Ray reads its environment (usage statistics off, the cluster token) when it is
# imported: every module of this package imports ray, so set it here, first.
from bigmodels.cluster import runtime  # noqa: E402,F401
