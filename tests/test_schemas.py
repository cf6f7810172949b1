"""The schema copies in tests/data are the shared originals, whenever shared/ is beside the repo."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "schemas"
DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("name", ["post.schema.json", "decision.schema.json"])
def test_the_schema_copies_are_the_shared_ones(name: str) -> None:
    if not SHARED.is_dir():
        pytest.skip("shared/ is not beside the repo (CI has it)")
    assert (DATA / name).read_bytes() == (SHARED / name).read_bytes()
