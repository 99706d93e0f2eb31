"""Storage: the SQL tables and their queries, and the schedule entries in Redis.

``db`` (engines, sessions, the schema check), ``models`` (the tables), ``runs`` (the
Process Monitor's rows), ``entries`` and ``schedules`` (RedBeat entries and the schedule
class they carry), ``migrations`` (Alembic). Built on the timing core; knows no service.
"""
