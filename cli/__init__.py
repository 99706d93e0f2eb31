"""The ``bgproc`` command line: parsing and printing only; the work is in :mod:`bgproc`."""
