"""``python -m bgproc``: the ``bgproc`` command, where the console script is not on PATH."""

from cli.main import run

run()
