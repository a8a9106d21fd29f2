"""Go-style durations ("30s", "5m", "1h30m", "250ms"), as Kubernetes users write them."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in `text`; raises ValueError naming the text when it is not a duration."""
    s = text.strip()
    if not s:
        raise ValueError("empty duration")
    pos, total = 0, 0.0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            raise ValueError(f"invalid duration {text!r}: use forms like 30s, 5m, 1h30m")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return total
