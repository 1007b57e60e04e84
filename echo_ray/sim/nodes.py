"""Worker nodes for the fluid simulator (issue 17 item 6): replicas packed onto nodes that take
minutes to start, as Ray's autoscaler runs them, with or without nodes asked for ahead of
demand (`request_resources`, echo_ray/autoscaling/nodes.py).

- A node holds `replicas_per_node` replicas (one replica's bundle = 1/replicas_per_node of a
  node). A new replica goes to a started node with room (the fullest first: packing), else to
  a node still starting (it begins its own start-up when the node is up), else Ray's
  autoscaler launches a node for it, up to `max_nodes`: the replica then waits
  `node_startup_s` plus its own start-up.
- The standing request (bundles, from the policy's last decision when `ahead` is on, through
  the same pure `ahead_bundles` the optimizer actor uses live) keeps room for that many
  replicas: nodes are launched for it now, and idle nodes it needs are not removed.
- A node with no replica for `idle_timeout_s` (Ray's `idle_timeout_minutes`) is removed,
  unless the request needs it. Node time is counted from launch to removal (what a cloud
  bills), as node-hours.

Pure Python; the simulator calls `place`, `release` and `tick` (FluidSimulator(nodes=...)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from echo_ray.autoscaling.nodes import ahead_bundles
from echo_ray.checks import integer, positive


@dataclass
class _Node:
    launched: float
    ready: float
    replicas: int = 0
    idle_since: float | None = None


class NodeCluster:
    def __init__(self, replicas_per_node: int = 4, node_startup_s: float = 180.0,
                 idle_timeout_s: float = 60.0, max_nodes: int | None = None,
                 initial_replicas: int = 1, min_nodes: int = 0, ahead: bool = False) -> None:
        self.replicas_per_node = integer("replicas_per_node", replicas_per_node, minimum=1)
        self.node_startup_s = positive("node_startup_s", node_startup_s, strict=False)
        self.idle_timeout_s = positive("idle_timeout_s", idle_timeout_s, strict=False)
        self.max_nodes = None if max_nodes is None else integer("max_nodes", max_nodes,
                                                                minimum=1)
        self.min_nodes = integer("min_nodes", min_nodes, minimum=0)
        self.ahead = bool(ahead)
        initial = integer("initial_replicas", initial_replicas, minimum=0)
        n = max(self.min_nodes, math.ceil(initial / self.replicas_per_node))
        self.nodes = [_Node(0.0, 0.0) for _ in range(n)]
        for k in range(initial):  # the initial replicas, packed
            self.nodes[k // self.replicas_per_node].replicas += 1
        self.request = 0  # replicas' room asked for (request_resources)
        self.node_seconds = 0.0
        self.launched = len(self.nodes)
        self.removed = 0
        self.peak_nodes = len(self.nodes)
        self.requests_sent = 0
        self.replica_wait_s = 0.0  # replica-seconds spent waiting for a node

    # ---- replicas ------------------------------------------------------------------------
    def _launch(self, t: float) -> _Node | None:
        if self.max_nodes is not None and len(self.nodes) >= self.max_nodes:
            return None
        node = _Node(t, t + self.node_startup_s)
        self.nodes.append(node)
        self.launched += 1
        self.peak_nodes = max(self.peak_nodes, len(self.nodes))
        return node

    def place(self, t: float, n: int, startup_s: float) -> list[float]:
        """Room for `n` new replicas at time t; their ready times (inf: no node can come)."""
        out = []
        for _ in range(n):
            room = [x for x in self.nodes if x.replicas < self.replicas_per_node]
            up = [x for x in room if x.ready <= t]
            if up:
                node = max(up, key=lambda x: x.replicas)
            elif room:
                node = min(room, key=lambda x: x.ready)
            else:
                node = self._launch(t)
            if node is None:
                out.append(math.inf)
                continue
            node.replicas += 1
            node.idle_since = None
            self.replica_wait_s += max(0.0, node.ready - t)
            out.append(max(t, node.ready) + startup_s)
        return out

    def release(self, t: float, n: int) -> None:
        """`n` replicas stopped: from nodes still starting (latest first), then the emptiest
        (so whole nodes go idle)."""
        for _ in range(n):
            used = [x for x in self.nodes if x.replicas > 0]
            if not used:
                return
            pending = [x for x in used if x.ready > t]
            node = (max(pending, key=lambda x: (x.ready, -x.replicas)) if pending
                    else min(used, key=lambda x: (x.replicas, -x.launched)))
            node.replicas -= 1

    # ---- the autoscaler --------------------------------------------------------------------
    def nodes_for(self, replicas: int) -> int:
        return math.ceil(replicas / self.replicas_per_node)

    def tick(self, t: float, dt: float, policy=None, running: int = 0) -> None:
        """One step of Ray's autoscaler: the standing request (from `policy` when ahead),
        launches for it, removes idle nodes; counts node time."""
        if self.ahead and policy is not None:
            decision = getattr(policy, "last_decision", None)
            ahead = getattr(decision, "ahead_replicas", None)
            bundles = ahead_bundles(ahead, running, {"CPU": 1.0})
            if len(bundles) != self.request:
                self.requests_sent += 1
            self.request = len(bundles)
        keep = max(self.min_nodes, self.nodes_for(self.request))
        while len(self.nodes) < keep and self._launch(t) is not None:
            pass
        for node in self.nodes:
            if node.replicas == 0 and node.ready <= t:
                if node.idle_since is None:
                    node.idle_since = t
            else:
                node.idle_since = None
        idle = sorted((x for x in self.nodes if x.idle_since is not None
                       and t - x.idle_since >= self.idle_timeout_s), key=lambda x: x.launched)
        for node in reversed(idle):  # newest idle first
            if len(self.nodes) <= keep:
                break
            self.nodes.remove(node)
            self.removed += 1
        self.node_seconds += len(self.nodes) * dt

    def summary(self) -> dict:
        return {"node_hours": self.node_seconds / 3600.0, "nodes_launched": self.launched,
                "nodes_removed": self.removed, "peak_nodes": self.peak_nodes,
                "replica_node_wait_s": self.replica_wait_s,
                "node_requests_changed": self.requests_sent,
                "replicas_per_node": self.replicas_per_node,
                "node_startup_s": self.node_startup_s, "provision_ahead": self.ahead}
