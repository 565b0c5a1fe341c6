"""Failures of the node cluster, one class per cause."""

from __future__ import annotations


class ClusterError(Exception):
    """Base of every failure raised by geth_cluster."""


class ToolMissingError(ClusterError):
    """A binary the cluster needs (geth) is not installed."""


class NodeStartError(ClusterError):
    """A node process exited early or did not become ready in time."""


class NodeAllotmentError(ClusterError):
    """A node meant to run confined to its allotment could not be put in a cgroup."""


class NodeUnreachableError(ClusterError):
    """A node's JSON-RPC endpoint did not answer."""


class RpcError(ClusterError):
    """A node answered a JSON-RPC call with an error object."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"JSON-RPC error {code}: {message}")
        self.code = code
        self.message = message


class UnknownNodeError(ClusterError):
    """A node name that is not part of the cluster."""


class DockerEngineError(ClusterError):
    """No Docker engine answers, and none could be installed or started."""


class ImageBuildError(ClusterError):
    """The local Geth image could not be built from the binary."""
