"""docs/operations.md's metric reference against the collector: they cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

from tahoe_governor.web.metrics import METRICS

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def test_reference_table_lists_every_metric_with_its_type_and_labels() -> None:
    """Each row of the reference names an exported metric, its type and its
    labels, and every exported metric has a row."""
    rows = {}
    for line in OPERATIONS.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"\| `(tahoe_governor_\w+)` \| (\w+) \| ([^|]*) \| [^|]+ \|", line)
        if match:
            labels = tuple(re.findall(r"`(\w+)`", match.group(3)))
            rows[match.group(1)] = (match.group(2), labels)
    assert rows == {spec.name: (spec.kind, spec.labels) for spec in METRICS}
