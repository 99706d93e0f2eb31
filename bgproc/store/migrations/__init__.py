"""Alembic environment and scripts of the bgproc schema (a package, so that it ships)."""
