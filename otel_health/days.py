"""A target's minutes: the last day by the minute, as the status page shows it (:class:`Day`),
and the days before it, as the history store keeps them (:class:`Past`), with the packing the
store writes and reads them in; and the checks its SLO counts, by the hour (:class:`Tally`).
Each is a fixed buffer or one array: no object a minute or a day, so thousands of targets
cost the garbage collector nothing to walk.
"""

from __future__ import annotations

import bisect
from array import array

__all__ = ["DAY_MINUTES", "PAST_DAYS", "Day", "Past", "Tally", "day_counts", "merge_max", "pack_minutes",
           "tally_hours", "unpack_minutes"]

DAY_MINUTES = 24 * 60
PAST_DAYS = 366  # days a target's Past holds at most (the history store keeps fewer by default)


class Day:
    """A target's last 24 hours by the minute, two bits a minute (360 bytes): no check, up,
    slow or down, the worst check of each minute. The newest minute is the last one marked;
    minutes without a check since read as no check."""

    __slots__ = ("_bits", "_last")
    NONE, UP, SLOW, DOWN = 0, 1, 2, 3

    def __init__(self) -> None:
        self._bits = bytearray(DAY_MINUTES // 4)
        self._last = -1  # the newest minute marked, in minutes since the epoch

    def mark(self, when: float, state: int) -> None:
        minute = int(when // 60)
        if minute <= self._last - DAY_MINUTES:
            return  # older than the day kept
        if minute > self._last:
            if self._last < 0 or minute - self._last >= DAY_MINUTES:
                self._bits[:] = bytes(len(self._bits))
            else:
                for m in range(self._last + 1, minute):  # minutes without a check since
                    self._set(m, self.NONE)
                self._set(minute, self.NONE)
            self._last = minute
        if state > self._get(minute):
            self._set(minute, state)

    def _get(self, minute: int) -> int:
        byte, slot = divmod(minute % DAY_MINUTES, 4)
        return (self._bits[byte] >> (slot * 2)) & 3

    def _set(self, minute: int, state: int) -> None:
        byte, slot = divmod(minute % DAY_MINUTES, 4)
        shift = slot * 2
        self._bits[byte] = (self._bits[byte] & ~(3 << shift) & 0xFF) | (state << shift)

    def raw(self) -> tuple[bytes, int]:
        """The packed ring and its newest minute, copied (for the history store to write)."""
        return bytes(self._bits), self._last

    def adopt(self, bits: bytes, last: int) -> None:
        """Take a ring :func:`pack_minutes` made (what the history store kept of the last day) as
        marked, where this day has no worse mark: the minutes a restart would otherwise forget."""
        if last < 0:
            return
        if self._last < 0:
            self._bits[:], self._last = bits, last
            return
        # marks of its own already (checked before the load): the two days merged, each minute
        # its worse state, up to the newer of the two
        newest = max(last, self._last)
        mine = _window(*unpack_minutes(bytes(self._bits), self._last), newest)
        theirs = _window(*unpack_minutes(bits, last), newest)
        self._bits[:], self._last = _packed(merge_max(mine, theirs), newest), newest

    def minutes(self, now: float) -> bytes:
        """The states of the :data:`DAY_MINUTES` minutes up to ``now``'s, oldest first."""
        newest = int(now // 60)
        if self._last < 0 or abs(newest - self._last) >= DAY_MINUTES:
            return bytes(DAY_MINUTES)
        ring = b"".join([_SPREAD[b] for b in self._bits])  # slot i holds the minute m with m % DAY == i
        last = self._last % DAY_MINUTES
        held = ring[last + 1:] + ring[:last + 1]  # the day up to the newest mark, oldest first
        # now may be later than the newest mark (minutes with no check since) or, rarely, earlier
        shift = newest - self._last
        if shift >= 0:
            return held[shift:] + bytes(shift)
        return bytes(-shift) + held[:shift]


_SPREAD = [bytes((b & 3, (b >> 2) & 3, (b >> 4) & 3, b >> 6)) for b in range(256)]


# A byte holding 4a + b (a and b minute states, 0-3) -> the worse of the two
_WORSE = bytes(max(c >> 2, c & 3) if c < 16 else 0 for c in range(256))


def merge_max(a: bytes, b: bytes) -> bytes:
    """Minute by minute the worse of two equal runs of minute states (one byte each, 0-3), in C:
    the bytes of ``a`` shifted two bits left stay within their byte (at most 12), plus ``b``'s."""
    combined = (int.from_bytes(a, "big") << 2) + int.from_bytes(b, "big")
    return combined.to_bytes(len(a), "big").translate(_WORSE)


def _window(first: int, states: bytes, newest: int) -> bytes:
    """``states`` (from minute ``first`` on) as the :data:`DAY_MINUTES` minutes up to ``newest``."""
    oldest = newest - DAY_MINUTES + 1
    if first < oldest:
        states, first = states[oldest - first:], oldest
    states = bytes(first - oldest) + states
    return (states + bytes(DAY_MINUTES))[:DAY_MINUTES]


def _packed(window: bytes, newest: int) -> bytes:
    """The :data:`DAY_MINUTES` minutes up to ``newest`` (oldest first) as a :class:`Day` ring:
    minute m at ring slot m % DAY_MINUTES, four to a byte."""
    shift = (newest + 1) % DAY_MINUTES
    ring = window[DAY_MINUTES - shift:] + window[:DAY_MINUTES - shift]
    packed = 0
    for slot in range(4):  # each term stays within its byte: at most 3 << 6
        packed += int.from_bytes(ring[slot::4], "big") << (2 * slot)
    return packed.to_bytes(DAY_MINUTES // 4, "big")


def pack_minutes(first: int, states: bytes) -> tuple[bytes, int]:
    """One byte a minute from minute ``first`` on, as a :class:`Day` ring (its last
    :data:`DAY_MINUTES` minutes up to the last one with a state) and that minute; (…, -1) when
    no minute has one."""
    end = len(states.rstrip(b"\0"))
    if not end:
        return bytes(DAY_MINUTES // 4), -1
    last = first + end - 1
    return _packed(_window(first, states[:end], last), last), last


def unpack_minutes(bits: bytes, last: int) -> tuple[int, bytes]:
    """A :meth:`Day.raw` ring as (its oldest minute, one byte a minute, oldest first)."""
    ring = b"".join([_SPREAD[b] for b in bits])
    at = last % DAY_MINUTES
    return last - DAY_MINUTES + 1, ring[at + 1:] + ring[:at + 1]


def day_counts(states: bytes) -> tuple[int, int]:
    """(minutes up, minutes checked) of a day's states, slow counting as up."""
    checked = len(states) - states.count(Day.NONE)
    return states.count(Day.UP) + states.count(Day.SLOW), checked


class Past:
    """A target's days before today, as the history store keeps them: per UTC day, the minutes
    with a check and those in which every check passed (slow counts as up), for
    :data:`PAST_DAYS` days at most. Three arrays by day, oldest first: no object per day, and a
    window's sums are a bisection and two slices."""

    __slots__ = ("_checked", "_days", "_up")

    def __init__(self) -> None:
        self._days, self._up, self._checked = array("q"), array("q"), array("q")

    def adopt(self, days: array[int]) -> None:
        """Take what the history store read (day, up, checked triples, by day) as this target's."""
        if not self._days:
            kept = days[-3 * PAST_DAYS:]
            self._days, self._up, self._checked = kept[0::3], kept[1::3], kept[2::3]
            return
        for i in range(0, len(days), 3):
            self.add(days[i], days[i + 1], days[i + 2])

    def add(self, day: int, up: int, checked: int) -> None:
        """The counts of ``day`` (replacing what was held for it)."""
        at = bisect.bisect_left(self._days, day)
        if at < len(self._days) and self._days[at] == day:
            self._up[at], self._checked[at] = up, checked
            return
        self._days.insert(at, day)
        self._up.insert(at, up)
        self._checked.insert(at, checked)
        if len(self._days) > PAST_DAYS:
            del self._days[0], self._up[0], self._checked[0]

    def has(self, day: int) -> bool:
        at = bisect.bisect_left(self._days, day)
        return at < len(self._days) and self._days[at] == day

    def since(self, first_day: int, before_day: int) -> tuple[int, int]:
        """(minutes up, minutes checked) over the days from ``first_day`` to before ``before_day``."""
        i, j = bisect.bisect_left(self._days, first_day), bisect.bisect_left(self._days, before_day)
        return sum(self._up[i:j]), sum(self._checked[i:j])

    def __len__(self) -> int:
        return len(self._days)


def tally_hours(ring: array[int], last: int) -> tuple[int, array[int]]:
    """A :meth:`Tally.raw` ring as (its oldest hour, two counts a hour from it on, oldest first);
    (-1, empty) when it counted nothing."""
    if last < 0:
        return -1, array("I")
    at = 2 * (last % Tally.HOURS + 1)
    return last - Tally.HOURS + 1, ring[at:] + ring[:at]


class Tally:
    """The checks a target's SLO counts and those that spent its error budget, by the hour: the
    last 24 hours in a ring (one array of 48 counts: checks, bad, by hour), what the history
    store writes; and each day before today's totals (a :class:`Past` of checks and bad
    checks), what the page's budget sums. Only targets with an SLO have one."""

    __slots__ = ("_counts", "_last", "past")
    HOURS = 24

    def __init__(self) -> None:
        self._counts = array("I", bytes(8 * self.HOURS))
        self._last = -1  # the newest hour counted, in hours since the epoch
        self.past = Past()  # (day, checks, bad) a day

    def add(self, when: float, bad: bool) -> None:
        hour = int(when // 3600)
        if hour <= self._last - self.HOURS:
            return  # older than the ring
        if hour > self._last:
            self._clear(hour)
        slot = 2 * (hour % self.HOURS)
        self._counts[slot] += 1
        if bad:
            self._counts[slot + 1] += 1

    def _clear(self, hour: int) -> None:
        """Move the ring's newest hour on to ``hour``, the hours between emptied."""
        if self._last < 0 or hour - self._last >= self.HOURS:
            self._counts = array("I", bytes(8 * self.HOURS))
        else:
            for h in range(self._last + 1, hour + 1):
                slot = 2 * (h % self.HOURS)
                self._counts[slot] = self._counts[slot + 1] = 0
        self._last = hour

    def raw(self) -> tuple[array[int], int]:
        """The ring and its newest hour, copied (for the history store: :func:`tally_hours`)."""
        return self._counts[:], self._last

    def hours(self) -> tuple[int, array[int]]:
        """(the ring's oldest hour, checks and bad checks a hour from it on, oldest first), copied;
        (-1, empty) when nothing was counted."""
        return tally_hours(self._counts, self._last)

    def adopt(self, first: int, counts: array[int], now: float) -> None:
        """Add what the history store kept (checks and bad checks a hour from hour ``first`` on)
        to the hours of the ring that ``now`` reaches: what a restart would otherwise forget."""
        newest = max(self._last, int(now // 3600))
        if newest > self._last:
            self._clear(newest)
        for i in range(0, len(counts), 2):
            hour = first + i // 2
            if newest - self.HOURS < hour <= newest:
                slot = 2 * (hour % self.HOURS)
                self._counts[slot] += counts[i]
                self._counts[slot + 1] += counts[i + 1]

    def since(self, start: float, now: float) -> tuple[int, int]:
        """(checks, bad) from the UTC day of ``start`` to ``now``: the days before today from
        :attr:`past`, the rest from the ring (yesterday too, while the store has not ended it)."""
        today = int(now // 86400)
        checks, bad = self.past.since(int(start // 86400), today)
        first, counts = self.hours()
        if first >= 0:
            for i in range(0, len(counts), 2):
                day = (first + i // 2) // 24
                if day == today or (day < today and day >= start // 86400 and not self.past.has(day)):
                    checks, bad = checks + counts[i], bad + counts[i + 1]
        return checks, bad

    def within(self, window: float, now: float) -> tuple[int, int]:
        """(checks, bad) over the last ``window`` seconds: a window up to a day by the hour (the
        hour ``now - window`` falls in counted whole), a longer one by the UTC day (today so far
        and the days before it, as many as the window has whole days)."""
        if window > 86400:
            return self.since(now - (window // 86400 - 1) * 86400, now)
        first, counts = self.hours()
        oldest, newest = int((now - window) // 3600), int(now // 3600)
        checks = bad = 0
        for i in range(0, len(counts), 2):
            if oldest <= first + i // 2 <= newest:
                checks, bad = checks + counts[i], bad + counts[i + 1]
        return checks, bad
