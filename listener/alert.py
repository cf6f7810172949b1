"""The alert as notifiers see it: one post, the organisation and branch it is about, and why.

An `AlertMessage` is self-contained: it is stored as JSON in the outbox when the decision is made,
so a delivery retried days later (or after a config change) still says exactly what was decided.
Everything in it that came from a post (text, author, location) is untrusted: each notifier
escapes it for its own medium.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from listener.post import Post


@dataclass(frozen=True, slots=True)
class AlertMessage:
    alert_id: int
    post: Post
    org_id: str
    org_name: str
    branch_id: str | None
    branch_name: str | None
    search_id: str
    level: str
    score: float
    labels: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    distance_km: float | None = None

    @property
    def where(self) -> str:
        """'Bibliotheek Eemland / Vathorst' or just the organisation."""
        return f"{self.org_name} / {self.branch_name}" if self.branch_name else self.org_name

    def to_json(self) -> str:
        data: dict[str, Any] = asdict(self)
        data["post"] = self.post.to_dict()
        return json.dumps(data, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AlertMessage:
        data = json.loads(text)
        data["post"] = Post.from_dict(data["post"])
        return cls(**data)
