"""``bgproc web``: the Process Request and Process Monitor windows in a browser, and /api/v1.

A second front end beside ``cli/``: it parses, calls the same services through an
:class:`~bgproc.installation.Installation`, and renders (the JSON documents are
:mod:`bgproc.services.documents`', the CLI's ``--json``).
"""
