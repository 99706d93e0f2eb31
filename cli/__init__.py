"""The ``bgproc`` command line: parsing and printing only; the work is in :mod:`bgproc`.

A command imports the heavy libraries it uses (SQLAlchemy, Celery, Redis, rich) inside its
body, or through :class:`bgproc.installation.Installation`, never at the top of a module:
``bgproc --help`` and ``preview`` then start without them, and the listings without
Celery (tests/unit/test_startup.py keeps it so; bench/bench_cli.py gives the figures).
"""
