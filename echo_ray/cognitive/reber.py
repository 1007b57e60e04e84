"""The (embedded) Reber grammar: a generator and a recogniser for the grammar benchmark.

Reber (1967) finite-state grammar over B T P S X V E; the embedded version wraps a Reber string
as B T <reber> T E or B P <reber> P E, so a predictor must remember the second symbol until the
second to last one (a long-memory test, Hochreiter & Schmidhuber 1997).
"""

from __future__ import annotations

import numpy as np

ALPHABET = "BEPSTVX"

# node -> [(symbol, next node)]; node 5 is the exit, followed by E.
_REBER = {
    0: [("T", 1), ("P", 2)],
    1: [("S", 1), ("X", 3)],
    2: [("T", 2), ("V", 4)],
    3: [("X", 2), ("S", 5)],
    4: [("P", 3), ("V", 5)],
}


def reber(rng: np.random.Generator, max_length: int = 50) -> str:
    """One Reber string (each branch with probability 1/2), redrawn until <= max_length."""
    while True:
        out, node = ["B"], 0
        while node != 5:
            symbol, node = _REBER[node][int(rng.integers(2))]
            out.append(symbol)
        out.append("E")
        if len(out) <= max_length:
            return "".join(out)


def embedded_reber(rng: np.random.Generator, max_length: int = 50) -> str:
    """B T <reber> T E or B P <reber> P E, redrawn until <= max_length symbols."""
    while True:
        inner = reber(rng, max_length)
        wrap = "TP"[int(rng.integers(2))]
        s = f"B{wrap}{inner}{wrap}E"
        if len(s) <= max_length:
            return s


def is_reber(s: str) -> bool:
    if len(s) < 2 or s[0] != "B" or s[-1] != "E":
        return False
    node = 0
    for symbol in s[1:-1]:
        nxt = dict(_REBER.get(node, []))
        if symbol not in nxt:
            return False
        node = nxt[symbol]
    return node == 5


def is_embedded_reber(s: str) -> bool:
    return (len(s) >= 4 and s[0] == "B" and s[-1] == "E" and s[1] in "TP" and s[-2] == s[1]
            and is_reber(s[2:-2]))


def corrupt(s: str, rng: np.random.Generator, alphabet: str = ALPHABET) -> str:
    """`s` with one symbol replaced by a different one, redrawn until ungrammatical."""
    for _ in range(1000):
        i = int(rng.integers(len(s)))
        c = alphabet[int(rng.integers(len(alphabet)))]
        out = s[:i] + c + s[i + 1:]
        if c != s[i] and not is_embedded_reber(out):
            return out
    raise ValueError(f"could not corrupt {s!r} into an ungrammatical string")
