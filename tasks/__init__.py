"""Processes that ship with bgproc; imported always (design §6)."""

from tasks import billing, sample

__all__ = ["billing", "sample"]
