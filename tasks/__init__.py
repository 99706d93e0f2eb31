"""Processes that ship with bgproc; imported always (SPEC §6)."""

from tasks import sample

__all__ = ["sample"]
