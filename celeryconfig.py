"""Celery settings from the environment (SPEC §6), for ``celery -A`` and ``config_from_object``.

Everything comes from :mod:`bgproc.settings`; edit the environment, not this file.
"""

from bgproc.runtime.app import celery_config
from bgproc.settings import Settings

globals().update(celery_config(Settings.from_env()))
