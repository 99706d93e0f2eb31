"""A cron expression in words: cron_descriptor's, or ``cron <text>`` where it would be wrong.

cron_descriptor is imported only when a description is asked for, so that commands which
print none (``bgproc --help``) start without it (tests/unit/test_startup.py).
"""

from __future__ import annotations

import re

from bgproc.timing.cronsyntax import LAST_YEAR, wrapping_step


def describe(text: str, dialect: str) -> str:
    """Human text for a valid expression of ``dialect`` ("unix" or "quartz")."""
    parts = text.upper().split()
    if dialect == "quartz":
        parts = parts + ["*"] * (7 - len(parts))
        dom, dow = parts[3], parts[5]
        if dow == "L":
            parts[5] = "7"
        # cron_descriptor drops the W of L-nW and garbles lists holding L, W or #.
        if re.search(r"L-\d+W", dom) or ("," in dom and re.search("[LW]", dom)):
            return _fallback(text)
        if "," in dow and any("#" in i or i.endswith("L") for i in dow.split(",")):
            return _fallback(text)
        if parts[6] not in ("*", "?") and re.fullmatch(r"\d+/\d+", parts[6]):
            start, step = parts[6].split("/")
            parts[6] = f"{start}-{LAST_YEAR}/{step}"
    else:
        dom, dow = parts[2], parts[4]
        # Vixie ANDs the days when either field starts with '*'; cron_descriptor says "or".
        if dom.startswith("*") and dom != "*" and not dow.startswith("*"):
            return _fallback(text)
    # ... and reads a stepped, wrapping weekday range (FRI-MON/2) as "every 2 weeks".
    if wrapping_step(dow, dialect):
        return _fallback(text)
    from cron_descriptor import ExpressionDescriptor, Options  # only a description needs it

    options = Options()
    options.day_of_week_start_index_zero = dialect == "unix"
    options.use_24hour_time_format = True
    try:
        words = ExpressionDescriptor(" ".join(parts), options).get_description()
    except Exception:  # cron_descriptor raises its own and stdlib errors; all mean "can't"
        return _fallback(text)
    return words if words and words.strip() else _fallback(text)


def _fallback(text: str) -> str:
    return f"cron {text}"
