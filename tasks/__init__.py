"""Processes that ship with bgproc; imported always (SPEC §6)."""

from tasks import billing, sample

__all__ = ["billing", "sample"]
