"""Unlabeled rooted trees (OEIS A000081) and the tree functions of B-series theory.

A tree is a canonical nested tuple: a node is the sorted tuple of its children, so the
single-node tree is ``()`` and the tree with a root and two leaves is ``((), ())``. Equal trees
have equal tuples, which makes them hashable and countable without isomorphism tests.
"""

from __future__ import annotations

from collections import Counter
from functools import cache
from math import factorial, prod

Tree = tuple


def size(t: Tree) -> int:
    """Number of nodes."""
    return 1 + sum(size(c) for c in t)


def _key(t: Tree):
    # Total order used to keep children sorted: by size, then recursively by children.
    return (size(t), tuple(_key(c) for c in t))


def canonical(t: Tree) -> Tree:
    """Canonical form of any nested tuple/list tree (children sorted by `_key`)."""
    return tuple(sorted((canonical(c) for c in t), key=_key))


@cache
def _forests(n: int, max_key) -> tuple[tuple[Tree, ...], ...]:
    """All multisets of trees with `n` nodes in total, each tree's key <= max_key, as
    non-increasing sequences (so every multiset appears once)."""
    if n == 0:
        return ((),)
    out = []
    for first_size in range(min(n, max_key[0]), 0, -1):
        for t in trees(first_size):
            k = _key(t)
            if k > max_key:
                continue
            for rest in _forests(n - first_size, k):
                out.append((t, *rest))
    return tuple(out)


@cache
def trees(n: int) -> tuple[Tree, ...]:
    """Every unlabeled rooted tree with `n` nodes, each exactly once."""
    if n < 1:
        raise ValueError(f"n must be a positive node count, got {n}")
    if n == 1:
        return ((),)
    big = (n, ())  # larger than any key of a tree with < n nodes
    return tuple(tuple(reversed(f)) for f in _forests(n - 1, big))


def count_rooted_trees(n: int) -> int:
    """A000081(n) from the Cayley/Otter recurrence (independent of the enumeration):
    a(n+1) = 1/n * sum_{k=1..n} (sum_{d|k} d a(d)) a(n-k+1)."""
    if n < 1:
        raise ValueError(f"n must be a positive node count, got {n}")
    a = [0, 1]
    for m in range(1, n):
        s = sum(sum(d * a[d] for d in range(1, k + 1) if k % d == 0) * a[m - k + 1]
                for k in range(1, m + 1))
        a.append(s // m)
    return a[n]


def gamma(t: Tree) -> int:
    """Tree factorial: gamma(t) = |t| * prod gamma(children)."""
    return size(t) * prod(gamma(c) for c in t)


def sigma(t: Tree) -> int:
    """Symmetry factor: order of the tree's automorphism group."""
    return prod(sigma(c) ** m * factorial(m) for c, m in Counter(t).items())


def depth(t: Tree) -> int:
    """Number of levels (a single node has depth 1)."""
    return 1 + max((depth(c) for c in t), default=0)
