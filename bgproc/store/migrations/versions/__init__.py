"""Schema revisions, applied in order by ``bgproc.store.schema.upgrade``."""
