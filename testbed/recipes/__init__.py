"""Recipes for simulated worlds: one function per class of caller over a shared context.

:mod:`testbed.recipes.context` holds the shared context (seeded generator,
clock and day rhythm, number factory, trunks, the call sink, the labels and
the seed-level priors); one module per family of recipes:
:mod:`~testbed.recipes.population` (network, clustered social graph, ordinary
subscribers), :mod:`~testbed.recipes.legitimate` (busy legitimate callers),
:mod:`~testbed.recipes.abuse` (the operations to find) and
:mod:`~testbed.recipes.delivery` (how the records reach the feed, defects
included).  :mod:`testbed.wide` puts them together.
"""
