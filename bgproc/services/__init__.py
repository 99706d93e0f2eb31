"""The rules any front end drives (the CLI today, the web windows next).

Each service takes what it uses (an engine or store, the entry store, the registry, a
clock) and knows neither ``cli`` nor the runtime: ``requests`` (with ``requestview``, a
request as callers see it), ``groups``, ``sync``, ``adhoc``, ``kills``, ``control`` (live
workers, beats, queues), ``health``.
"""
