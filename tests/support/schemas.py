"""The canonical JSON schemas, as copies that travel with the tests (shared/ is not always beside
the repo); `test_the_schema_copies_are_the_shared_ones` keeps them equal to the originals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1] / "data"


def post_schema() -> dict[str, Any]:
    return dict(json.loads((DATA / "post.schema.json").read_text(encoding="utf-8")))


def decision_schema() -> dict[str, Any]:
    return dict(json.loads((DATA / "decision.schema.json").read_text(encoding="utf-8")))
