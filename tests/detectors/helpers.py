"""Small call generators for unit tests (deterministic, no simulator needed)."""

from __future__ import annotations

import random

from detectors.records import Call

T0 = 1_714_521_600.0


def dialer_calls(caller: str = "+8617000000001", n: int = 200, every: float = 2.0,
                 t0: float = T0, answer_rate: float = 0.1, seed: int = 1) -> list[Call]:
    rng = random.Random(seed)
    calls = []
    for i in range(n):
        answered = rng.random() < answer_rate
        calls.append(Call(caller, f"+86139{rng.randrange(10**8):08d}", t0 + i * every,
                          duration=rng.randint(1, 6) if answered else 0, answered=answered,
                          ring=rng.uniform(8, 20), id=f"{caller}@{t0 + i * every}",
                          trunk="gw-cloud"))
    return calls


def courier_calls(caller: str = "+8613800000077", n: int = 120, every: float = 30.0,
                  t0: float = T0, seed: int = 2) -> list[Call]:
    """A courier: distinct customers, mostly answered, 20-60 s talk, customers call back."""
    rng = random.Random(seed)
    calls = []
    for i in range(n):
        customer = f"+86137{rng.randrange(10**8):08d}"
        answered = rng.random() < 0.8
        t = t0 + i * every
        calls.append(Call(caller, customer, t, duration=rng.randint(20, 60) if answered else 0,
                          answered=answered, ring=rng.uniform(3, 15), trunk="mobile-1"))
        if rng.random() < 0.3:
            calls.append(Call(customer, caller, t + rng.uniform(1, 20), duration=25,
                              answered=True, ring=4.0, trunk="mobile-2"))
    calls.sort(key=lambda c: c.start)
    return calls


def pool_calls(prefix: str = "+86171000", members: int = 12, calls_each: int = 8,
               every: float = 45.0, t0: float = T0, trunk: str = "gw-pool",
               answer_rate: float = 0.1, seed: int = 3) -> list[Call]:
    """A rotating pool: fresh numbers, a few mostly unanswered calls each, one gateway;
    each number starts a little after the previous one."""
    rng = random.Random(seed)
    calls = []
    for m in range(members):
        caller = f"{prefix}{m:05d}"
        start = t0 + m * every * 2
        for i in range(calls_each):
            answered = rng.random() < answer_rate
            t = start + i * every + rng.uniform(0, 5)
            calls.append(Call(caller, f"+86139{rng.randrange(10**8):08d}", t,
                              duration=rng.randint(1, 5) if answered else 0,
                              answered=answered, ring=rng.uniform(8, 20),
                              id=f"{caller}@{t:.3f}", trunk=trunk))
    return calls
