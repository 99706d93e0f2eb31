"""The Celery app of the end-to-end beat test: ``celery -A tests.integration.beat_app beat``.

The test sets ``BGPROC_KEY_PREFIX`` and the broker in the environment of the beat it starts.
"""

from __future__ import annotations

from bgproc.runtime.app import create_app
from bgproc.settings import Settings

app = create_app(Settings.from_env())
