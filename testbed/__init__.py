"""Tools around detection, not detection: simulated carrier days and their evaluation.

``testbed.simulation`` and ``testbed.worlds`` build seeded, labelled synthetic days;
``testbed.evaluation`` scores any detector's alerts against the labels, beside the
baselines in ``testbed.baselines``.  Nothing in :mod:`detectors` imports this package.
"""
