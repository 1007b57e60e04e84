"""Node-local state is allowed on a single-node cluster only.

A store kept on a node's disk (the embedded SQLite session store) is invisible to replicas on
other nodes: a session created through one node answers 404 through another. Rather than lose
or hide writes, a replica that would keep such state on a Ray cluster of more than one alive
node refuses to start, and says what to set (docs/cluster.md).
"""

from __future__ import annotations


class NodeLocalStateRefused(RuntimeError):
    """Node-local state on a multi-node cluster."""


def alive_nodes() -> int | None:
    """Alive nodes of the Ray cluster this process belongs to; None outside Ray."""
    import ray

    if not ray.is_initialized():
        return None
    return sum(1 for n in ray.nodes() if n.get("Alive"))


def require_single_node(what: str, setting: str) -> None:
    """Raise NodeLocalStateRefused if this process runs on a Ray cluster of several nodes.
    `what` names the node-local state, `setting` what makes it cluster-wide."""
    nodes = alive_nodes()
    if nodes is not None and nodes > 1:
        raise NodeLocalStateRefused(
            f"{what} keeps its data on this node's disk, and this Ray cluster has {nodes} "
            f"alive nodes: replicas on the others would not see it. Set {setting} in the "
            f"environment of every node's Ray processes (see docs/cluster.md).")
