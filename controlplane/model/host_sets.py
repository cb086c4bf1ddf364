"""``host_matches`` and ``hosts_overlap`` over whole lists, without comparing every pair.

A VirtualService may list 100,000 hosts in 1.5 MiB; checking all pairs for duplicates took
7 s for 5,000 of them, hours for the rest, while the folder waited. Here a wildcard
``*<body>`` covers exactly the hosts whose body (the name, or a wildcard's part after ``*``)
ends with ``<body>``: a lookup of each suffix of a host, and a range of the bodies sorted
from their last character (those that end with a given text sit next to each other).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from controlplane.model.hosts import is_wildcard, normalize_host

_AFTER_ALL = "\U0010ffff"


class HostSet:
    """Answers ``any(host_matches(p, host) for p in patterns)`` in O(len(host)²)."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self._names = {normalize_host(p) for p in patterns if not is_wildcard(p)}
        self._wildcards = {normalize_host(p)[1:] for p in patterns if is_wildcard(p)}
        self._lengths = sorted({len(body) for body in self._wildcards})

    def covers(self, host: str) -> bool:
        host = normalize_host(host)
        if not is_wildcard(host) and host in self._names:
            return True
        body = host[1:] if is_wildcard(host) else host
        return any(
            body[len(body) - n :] in self._wildcards for n in self._lengths if n <= len(body)
        )


def earlier_overlaps(hosts: Sequence[str]) -> list[int | None]:
    """For each host, the index of the first host before it that overlaps it
    (``hosts_overlap``), or None."""
    norm = [normalize_host(h) for h in hosts]
    wild = [is_wildcard(h) for h in norm]
    body = [h[1:] if w else h for h, w in zip(norm, wild, strict=True)]
    count = len(norm)
    first_wildcard: dict[str, int] = {}
    for index in range(count):
        if wild[index]:
            first_wildcard.setdefault(body[index], index)
    lengths = sorted({len(b) for b in first_wildcard})
    first_name: dict[str, int] = {}
    earliest = _EarliestBySuffix(body) if first_wildcard else None
    out: list[int | None] = []
    for j in range(count):
        found = count
        if not wild[j]:  # an equal name
            found = first_name.setdefault(norm[j], j)
        text = body[j]
        for n in lengths:  # an earlier wildcard that covers this host
            if n <= len(text):
                found = min(found, first_wildcard.get(text[len(text) - n :], count))
        if wild[j] and earliest is not None:  # an earlier host this wildcard covers
            found = min(found, earliest.first_ending_with(text))
        out.append(found if found < j else None)
    return out


class _EarliestBySuffix:
    """The smallest index among texts that end with a given text: texts sorted reversed,
    so those form one range, and a segment tree of minimum indices over that order."""

    def __init__(self, texts: Sequence[str]) -> None:
        order = sorted(range(len(texts)), key=lambda i: texts[i][::-1])
        self._reversed = [texts[i][::-1] for i in order]
        self._size = size = len(order)
        self._tree = [size] * size + order
        for node in range(size - 1, 0, -1):
            self._tree[node] = min(self._tree[2 * node], self._tree[2 * node + 1])

    def first_ending_with(self, suffix: str) -> int:
        key = suffix[::-1]
        low = bisect_left(self._reversed, key) + self._size
        high = bisect_left(self._reversed, key + _AFTER_ALL) + self._size
        best = self._size
        while low < high:
            if low & 1:
                best = min(best, self._tree[low])
                low += 1
            if high & 1:
                high -= 1
                best = min(best, self._tree[high])
            low //= 2
            high //= 2
        return best
