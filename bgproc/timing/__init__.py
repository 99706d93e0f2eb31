"""The timing core: when a request fires. Pure: no I/O, no storage, no Celery.

``plan`` (the Timing value: its fire times and words), ``fields`` (each field declared once;
reading user input and the stored document), ``cron`` (Unix and Quartz expressions, with
``cronsyntax`` parsing them and ``cronwords`` saying them), ``walltime`` (the one home of the
DST rules) and ``inputs`` (typed values from user text, each refusal naming its field).
"""
