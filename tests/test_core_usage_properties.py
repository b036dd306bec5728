"""Property: over a random month of a router's life, counted usage never exceeds the truth.

A `RouterLife` (pure, fake clock) lives about five weeks around October or March (a BST change
inside the month, month boundaries on either side) with random wraps, reboots, missed polls,
month-statistics clears, SIM swaps and daemon restarts, sampled by each counter flavour. Per SIM
and calendar month, the counted bytes must never be above what really flowed and must equal it
whenever the counters could tell (no interval in which bytes were provably unknowable).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime

from hypothesis import event, given, settings
from hypothesis import strategies as st
from test_core_usage import SAMPLERS, SIM_A, T32, Ledger, new_life, ts

from monitor.core.calendar import month_key
from monitor.core.usage import UPTIME_DRIFT, UPTIME_SLACK
from monitor.emulator.life import LONDON, RouterLife

# The life books a month boundary's bytes exactly; the core splits an interval by time with
# integer floors, per direction: a few bytes either way per boundary-crossing interval.
ROUNDING = 8
GAPS = (60, 600, 3600, 3 * 3600, 6 * 3600)  # seconds between polls; a missed poll doubles one
MAX_RECEIVED_RATE = 90_000  # bytes/s: 12 h of it stays under 2**32, so one wrap per interval


@dataclass
class Plan:
    """How eventful a run is: per-poll chances of each event."""

    reboot: float
    missed: float
    restart: float
    clear: float
    swap: float


plans = st.builds(
    Plan,
    reboot=st.sampled_from([0.0, 0.0, 0.0, 0.02, 0.1]),
    missed=st.sampled_from([0.0, 0.1, 0.3]),
    restart=st.sampled_from([0.0, 0.05]),
    clear=st.sampled_from([0.0, 0.01]),
    swap=st.sampled_from([0.0, 0.0, 0.0, 0.01]),
)


def _lossless_reboot(
    flavour: str, life: RouterLife, before: tuple[int, int, str], now: float
) -> bool:
    """Whether the flavour's counters could still tell a whole interval with a reboot in it."""
    if flavour == "hilink":  # device totals survive reboots
        return True
    if flavour != "teltonika":  # interface counters only: the tail before the reboot is lost
        return False
    # The month columns cover the interval if they ran on in one month without wrapping.
    received, sent, key = before
    return (
        key == month_key_of(now)
        and received // T32 == life.month_received // T32
        and sent // T32 == life.month_sent // T32
    )


def month_key_of(when: float) -> str:
    """The London month of an epoch time."""
    return month_key(datetime.fromtimestamp(when, UTC), LONDON)


@settings(max_examples=150, deadline=None)
@given(
    flavour=st.sampled_from(sorted(SAMPLERS)),
    month=st.sampled_from([(2024, 10), (2025, 3)]),
    start_offset=st.integers(0, 10 * 86400),
    received_rate=st.integers(0, MAX_RECEIVED_RATE),
    sent_rate=st.integers(0, 20_000),
    counter_start=st.one_of(st.integers(0, 10**6), st.integers(T32 - 10**8, T32 - 1)),
    plan=plans,
    seed=st.integers(0, 2**32),
)
def test_counted_usage_never_exceeds_truth_and_matches_it_when_knowable(
    flavour: str,
    month: tuple[int, int],
    start_offset: int,
    received_rate: int,
    sent_rate: int,
    counter_start: int,
    plan: Plan,
    seed: int,
) -> None:
    rnd = random.Random(seed)
    sampler = SAMPLERS[flavour]
    year, number = month
    start = ts(year, number - 1, 20) + start_offset
    life = new_life(start, received_rate=float(received_rate), sent_rate=float(sent_rate))
    life.received_since_boot = life.device_received = counter_start
    life.sent_since_boot = life.device_sent = counter_start // 3
    ledger = Ledger()
    ledger.feed(sampler(life, start))
    sims, lossless = [SIM_A], True
    now, end = start, start + 36 * 86400
    while now < end:
        before = (life.month_received, life.month_sent, month_key_of(now))
        gap = rnd.choice(GAPS)
        if rnd.random() < plan.missed:
            gap *= 2  # a poll that got no sample: just a longer interval
        rebooted = rnd.random() < plan.reboot
        at = now + rnd.randint(1, gap - 1)
        # A reboot within the uptime slack of the last boot is invisible (documented): skip it.
        rebooted &= life.uptime(at) > UPTIME_SLACK + UPTIME_DRIFT * gap
        if rebooted:
            life.reboot(at)
        cleared = rnd.random() < plan.clear
        if cleared:
            life.clear_month(now + rnd.randint(1, gap - 1))
        if rnd.random() < plan.swap:
            sims.append(f"89441000000000{len(sims):05d}")
            life.insert_sim(now + rnd.randint(1, gap - 1), iccid=sims[-1])
            lossless = False
        now += gap
        ledger.feed(sampler(life, now))
        if rebooted:
            lossless &= not (cleared and flavour == "teltonika")
            lossless &= _lossless_reboot(flavour, life, before, now)
        if rnd.random() < plan.restart:
            ledger.restart()

    event(f"{flavour}: {'lossless' if lossless else 'lossy'}")
    event(f"wraps: {min(3, sum('wrap' in note for note in ledger.notes))}")
    keys = {(sim, f"{y:04d}-{m:02d}") for (sim, y, m) in life.truth} | set(ledger.totals)
    for sim, key in sorted(keys):
        truth = life.month_truth(int(key[:4]), int(key[5:]), sim)
        counted = ledger.month(sim, key)
        assert counted <= truth + ROUNDING, (sim, key, counted, truth, ledger.notes)
        if lossless:
            assert abs(counted - truth) <= ROUNDING, (sim, key, counted, truth, ledger.notes)
