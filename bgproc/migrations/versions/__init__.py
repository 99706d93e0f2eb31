"""Schema revisions, applied in order by ``bgproc.db.upgrade``."""
