"""bgproc: Etendo-style process requests and a process monitor on Celery, Redis and RedBeat.

The public face: declare processes with :func:`process`; they receive a
:class:`ProcessContext` and may take :class:`Secret` parameters.
"""

from bgproc.registry import ProcessContext, Secret, process

__version__ = "0.1.0"
__all__ = ["ProcessContext", "Secret", "__version__", "process"]
