"""The alert record (CONTRACT section 2).

>>> a = Alert(kind="number", caller="+8613800000001", score=2.5,
...           reasons=["cloud_dialer: bulk burst", "412 calls in 10 min"],
...           detected_at=1700000600.0, first_seen=1700000000.0, profile="cloud_dialer")
>>> d = Alert.from_json(a.to_json())
>>> d == a, sorted(a.to_dict())[:3]
(True, ['caller', 'detected_at', 'features'])

A ring alert names its members and the members added since its previous alert:

>>> r = Alert(kind="ring", score=4.1, reasons=["12 numbers, 310 calls in 20 min"],
...           detected_at=1700001200.0, first_seen=1700000000.0, profile="ring",
...           members=["+8617000000001", "+8617000000002"], new_members=["+8617000000002"],
...           ring_id="ring-3f2a9c01d4e5")
>>> Alert.from_json(r.to_json()) == r, r.to_dict()["ring_id"], "caller" in r.to_dict()
(True, 'ring-3f2a9c01d4e5', False)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(slots=True)
class Alert:
    """One alert: a suspicious number (``kind="number"``) or an operation (``"ring"``)."""

    kind: str
    score: float
    reasons: list[str]
    detected_at: float
    first_seen: float
    caller: str | None = None
    members: list[str] | None = None
    #: the rule profile that fired, or ``"model"`` for a model-only alert
    profile: str = ""
    model_score: float | None = None
    #: the feature values the decision saw, for analysts and evaluation
    features: dict[str, float] = field(default_factory=dict)
    trunk: str | None = None
    #: (ring) stable id of the group; (number) the ring the number belongs to, if known
    ring_id: str | None = None
    #: (ring) members added since this ring's previous alert
    new_members: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "score": round(self.score, 4),
            "reasons": self.reasons,
            "detected_at": self.detected_at,
            "first_seen": self.first_seen,
            "profile": self.profile,
            "features": self.features,
        }
        if self.kind == "number":
            out["caller"] = self.caller
        else:
            out["members"] = self.members or []
            out["new_members"] = self.new_members or []
        if self.ring_id is not None:
            out["ring_id"] = self.ring_id
        if self.model_score is not None:
            out["model_score"] = round(self.model_score, 4)
        if self.trunk is not None:
            out["trunk"] = self.trunk
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Alert:
        return cls(
            kind=d["kind"],
            score=float(d["score"]),
            reasons=list(d["reasons"]),
            detected_at=float(d["detected_at"]),
            first_seen=float(d["first_seen"]),
            caller=d.get("caller"),
            members=d.get("members"),
            profile=d.get("profile", ""),
            model_score=d.get("model_score"),
            features=dict(d.get("features", {})),
            trunk=d.get("trunk"),
            ring_id=d.get("ring_id"),
            new_members=d.get("new_members"),
        )

    @classmethod
    def from_json(cls, data: bytes | str) -> Alert:
        return cls.from_dict(orjson.loads(data))
