"""Group detection: calling numbers linked into one operation (CONTRACT 2, kind ``ring``).

* :mod:`detectors.rings.keys`: which grouping keys a call is routed by (ingress, called
  number block) and how a key is shown without a subscriber number in the clear;
* :mod:`detectors.rings.cohort`: the state of one key: its callers, its baseline of what
  its own traffic looks like, and the ring it holds, in a binary form for tables;
* :mod:`detectors.rings.report`: the words of a ring alert;
* :mod:`detectors.rings.detector`: :class:`~detectors.rings.detector.GroupDetector`.
"""
