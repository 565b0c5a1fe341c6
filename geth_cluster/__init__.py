"""geth_cluster."""
