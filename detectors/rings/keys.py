"""Grouping keys: the pieces of evidence a call is judged under, one state per key.

A call is routed by its **ingress** (the trunk it entered by, else its signalling
source address) and, when enabled, by the **block** of its called number (the number
without its last four digits).  A call whose feed gives neither trunk nor source
address is judged under a **population share** instead: the feed's callers without
ingress are one population, like a mobile switch carrying a city, split by a stable
hash of the calling number into ``population_shards`` random samples of it (so that no
one key carries a whole feed, and each share's judgement is against its own traffic).

Every key's state is touched only by calls routed to it, so a stream stage can partition
group state by key: repartition calls by :func:`route` and run one
:class:`~detectors.rings.detector.GroupDetector` per partition, feeding each call with
the key it was routed by.

>>> from detectors.records import Call
>>> call = Call("+8617000000001", "+8613812345678", 1.7e9, 0, False, trunk="gw-x")
>>> route(call, callee_blocks=True)
('in:gw-x', 'blk:+861381234')
>>> route(Call("+8617000000001", "+8613812345678", 1.7e9, 0, False, src_ip="10.0.0.9"), False)
('ip:10.0.0.9',)
>>> route(Call("+8617000000001", "+8613812345678", 1.7e9, 0, False), False)
()
>>> route(Call("+8617000000001", "+8613812345678", 1.7e9, 0, False), False, 8)
('pop:7/8',)
>>> route(Call("", "+8613812345678", 1.7e9, 0, False), False, 8)  # nobody to link
()
>>> describe("blk:+861381234"), describe("in:gw-x"), describe("ip:10.0.0.9")
('number block +861381234xxxx', 'gw-x', 'source address 10.0.0.9')
>>> describe("pop:7/8")
'calls without trunk or source address, callers in share 8 of 8'
"""

from __future__ import annotations

import zlib

from detectors.records import Call

INGRESS = "in:"
ADDRESS = "ip:"
BLOCK = "blk:"
POPULATION = "pop:"
#: Digits of the called number hidden in a block key (a block is 10,000 numbers).
BLOCK_DIGITS = 4
_NO_KEYS: tuple[str, ...] = ()


def route(call: Call, callee_blocks: bool, population_shards: int = 0) -> tuple[str, ...]:
    """The keys ``call`` is judged under: its ingress (if the feed says; else, with
    ``population_shards``, its caller's population share) and callee block."""
    if call.trunk:
        ingress = INGRESS + call.trunk
    elif call.src_ip:
        ingress = ADDRESS + call.src_ip
    elif population_shards and call.caller:
        ingress = population_key(population_share(call.caller, population_shards),
                                 population_shards)
    else:
        ingress = ""
    if callee_blocks and len(call.callee) > BLOCK_DIGITS + 4:
        block = BLOCK + call.callee[:-BLOCK_DIGITS]
        return (ingress, block) if ingress else (block,)
    return (ingress,) if ingress else _NO_KEYS


def population_share(caller: str, shards: int) -> int:
    """Which of ``shards`` population shares a caller without ingress belongs to (stable:
    the same in every process and run, unlike :func:`hash`)."""
    return zlib.crc32(caller.encode()) % shards


def population_key(share: int, shards: int) -> str:
    """The key of population share ``share`` of ``shards``."""
    return f"{POPULATION}{share}/{shards}"


def population_keys(shards: int) -> tuple[str, ...]:
    """The keys of the ``shards`` population shares, by share."""
    return tuple(population_key(i, shards) for i in range(shards))


def is_block(key: str) -> bool:
    return key.startswith(BLOCK)


def is_population(key: str) -> bool:
    return key.startswith(POPULATION)


def describe(key: str) -> str:
    """How a key appears in an alert: a callee block with its last digits masked."""
    if key.startswith(BLOCK):
        return f"number block {key[len(BLOCK):]}{'x' * BLOCK_DIGITS}"
    if key.startswith(ADDRESS):
        return f"source address {key[len(ADDRESS):]}"
    if is_population(key):
        share, _, shards = key[len(POPULATION):].partition("/")
        return (f"calls without trunk or source address, callers in share {int(share) + 1} "
                f"of {shards}")
    return key[len(INGRESS):]
