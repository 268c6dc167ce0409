"""`rng.sample(pool, len(pool))` taken lazily: the same elements in the same order, one at a time, and
the generator left exactly where the whole sample leaves it.

The question bank draws each multiple-choice item's distractors from its answer pool shuffled whole,
and a bank's bytes depend on the generator's state after every shuffle, so the shuffle cannot simply
become a draw of three. Taking only the elements an item looks at and skipping the rest of the
shuffle's draws without their elements keeps every bank identical. The skip still reads about 1.4
random words an element of the pool (the draws' rejection sampling decides how many, so they cannot be
jumped over): one by one it costs ~110 ns a draw, vectorised for a large pool ~70 ns, against
`random.sample`'s ~200 ns an element (2-core host of issue 28, busy).

This follows CPython's `random.sample` (a partial Fisher-Yates over a copy of the pool when the whole
pool is taken, `_randbelow` by `getrandbits` with rejection); `exact()` checks it against the running
interpreter's `random` once, and callers fall back to `random.sample` where it differs. The bulk skip is
checked against the draws one by one the first time it is needed (`_bulk_exact`), and not used where it
differs. numpy is imported only then: a small bank never needs it.
"""

from __future__ import annotations

import random
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

SMALL = 1024  # fewer draws are made one by one (~110 ns each here): the bulk skip's ~25 us of setup outweighs it
BLOCK = 512  # draws of one width from which the vectorised solver beats the plain loop
PASSES = 12  # of the block solver's bounds, before it hands the block to the plain loop


def _below(rng: random.Random, n: int) -> int:
    """`rng._randbelow(n)`: the top n.bit_length() bits of a 32-bit word, again while they are >= n."""
    k = n.bit_length()
    r = rng.getrandbits(k)
    while r >= n:
        r = rng.getrandbits(k)
    return r


def _loop(v: np.ndarray, m: int, low: int) -> tuple[int, int]:
    """`_block`, one word at a time."""
    for used, x in enumerate(v.tolist(), start=1):
        if x < m:
            m -= 1
            if m < low:
                return used, m
    return len(v), m


def _block(v: np.ndarray, m: int, low: int) -> tuple[int, int]:
    """(words read, m after) of the draws below m, m - 1, ..., low, which all take the same number of bits
    (v: those top bits of the next words); a draw takes the first word below its bound. Stops when m falls
    below low or the words run out.

    Word p is taken iff fewer than m - v[p] words were taken before it. Counting with too few taken
    before gives too many, and the reverse, so alternating the two sandwiches the true counts, which
    they meet in a few vectorised passes (3-4 on random words)."""
    n = len(v)
    room = m - v
    import numpy as np

    lo = np.zeros(n + 1, dtype=np.int64)  # words taken before each word: at most the true number
    hi = np.zeros(n + 1, dtype=np.int64)  # at least the true number
    for _ in range(PASSES):
        np.cumsum(lo[:-1] < room, out=hi[1:])
        np.cumsum(hi[:-1] < room, out=lo[1:])
        end = int(np.searchsorted(hi, m - low + 1))  # words read when the block's last draw is made
        if end <= n and np.array_equal(lo[:end + 1], hi[:end + 1]):
            return end, low - 1
        if end > n and np.array_equal(lo, hi):
            return n, m - int(hi[-1])
    return _loop(v, m, low)


def _read(rng: random.Random, n: int) -> np.ndarray:
    """The next n 32-bit words of `rng`, in the order its draws would take them."""
    import numpy as np

    return np.frombuffer(rng.getrandbits(32 * n).to_bytes(4 * n, "little"), dtype="<u4")  # word i: bits 32i..


def skip_draws(rng: random.Random, top: int) -> None:
    """Leave `rng` where `_below(rng, m)` for m = top, top - 1, ..., 1 would: read the words ahead, find
    how many the draws take, then put the generator back and let it take exactly those."""
    if top < SMALL or not _bulk_exact():
        for m in range(top, 0, -1):
            _below(rng, m)
        return
    _bulk(rng, top)


def _bulk(rng: random.Random, top: int) -> None:
    import numpy as np

    state = rng.getstate()
    words = _read(rng, top * 3 // 2 + 64)  # ~1.39 words a draw: these nearly always do
    m, base, taken = top, 0, 0  # words[i] is word base + i of the skip; taken: words the draws took
    while m:
        k = m.bit_length()
        low = 1 << (k - 1)
        need = (m - low + 1) * 3 // 2 + 64
        if base + len(words) - taken < need:  # the generator goes on where the read-ahead ended
            words = np.concatenate((words[taken - base:], _read(rng, max(need, m * 3 // 2 + 64))))
            base = taken
        v = (words[taken - base:taken - base + need] >> (32 - k)).astype(np.int64)
        used, m = (_block if m - low >= BLOCK else _loop)(v, m, low)
        taken += used
    rng.setstate(state)
    rng.getrandbits(32 * taken)  # a word for each 32 bits


class SampleOrder:
    """Indexes into a pool in `rng.sample(pool, len(pool))`'s order, drawn when taken (`take`); `skip`
    makes the draws of the rest without their elements."""

    def __init__(self, rng: random.Random, n: int):
        self.rng, self.n, self.taken = rng, n, 0
        self.moved: dict[int, int] = {}  # the partial Fisher-Yates's swaps: slot -> pool index now there

    @property
    def left(self) -> int:
        return self.n - self.taken

    def take(self) -> int:
        rest = self.n - self.taken
        j = _below(self.rng, rest)
        last = rest - 1
        idx = self.moved.get(j, j)
        self.moved[j] = self.moved.get(last, last)  # the last unpicked slot moves into the vacancy
        self.taken += 1
        return idx

    def skip(self) -> None:
        skip_draws(self.rng, self.left)
        self.taken = self.n


@cache
def _bulk_exact() -> bool:
    """Whether the bulk skip leaves the generator where the draws one by one do (checked once)."""
    for seed, top in ((4, 300), (5, 3000), (6, 20000)):
        one, bulk = random.Random(seed), random.Random(seed)
        for m in range(top, 0, -1):
            _below(one, m)
        _bulk(bulk, top)
        if one.getstate() != bulk.getstate():
            return False
    return True


@cache
def exact() -> bool:
    """Whether SampleOrder gives this interpreter's `random.sample` order and state (checked once, on pools
    whose skip draws one by one: the bulk skip is held to those draws by `_bulk_exact`)."""
    for seed, n, take in ((0, 5, 2), (1, 60, 3), (2, 200, 7), (3, SMALL - 1, 0)):
        pool = list(range(n))
        want = random.Random(seed)
        full = want.sample(pool, n)
        got = random.Random(seed)
        order = SampleOrder(got, n)
        first = [pool[order.take()] for _ in range(take)]
        order.skip()
        if first != full[:take] or got.getstate() != want.getstate():
            return False
    return True
