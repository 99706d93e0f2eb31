"""The timing core: when a request fires. Pure: no I/O, no storage, no Celery.

``plan`` (the Timing value: its fields, fire times and words), ``cron`` (Unix and Quartz
expressions), ``walltime`` (the one home of the DST rules) and ``inputs`` (typed values
from user text, each refusal naming its field).
"""
