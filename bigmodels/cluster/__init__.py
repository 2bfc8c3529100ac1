"""Device sessions on Ray: the cluster, warm sessions on its devices, and the dispatcher that feeds them runs."""
