"""Schema revisions, applied in order by ``bgproc.store.db.upgrade``."""
