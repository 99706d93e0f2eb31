"""What runs in the long-lived processes: the Celery app, beat, the worker and its parts.

``app`` (the one Celery configuration), ``beat`` (the scheduler wired to the database)
with ``entryscheduler`` (RedBeat with our entries, no SQL), ``unwatched`` (plans no beat
watched) and ``deferredstop`` (stop signals between ticks), ``worker`` (connection and
housekeeping), ``runner`` (the task that runs a process) with ``fire`` (what a message
asks for), ``outcome`` (what Celery is told) and ``runrequest`` (what the worker's main
process records), ``recorder``, ``logcapture`` (one run's Process Log) with ``logrouting``
and ``logflusher`` (the worker-wide parts), ``leases``, ``sweeper``, ``redelivery``,
``grouprun``, ``embedded`` (``up``'s beat).
"""
