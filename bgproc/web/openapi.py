"""The machine-readable description of ``/api/v1`` (OpenAPI 3.1), made from its route table.

Each operation names the CLI command whose ``--json`` document it returns: that document
is the schema (``bgproc COMMAND --json`` shows one).
"""

from __future__ import annotations

import re
from typing import Any

from bgproc import __version__
from bgproc.web.api import ENDPOINTS, PREFIX

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "field": {"type": ["string", "null"], "description": "the field at fault"},
                "message": {"type": "string"},
            },
        }
    },
}
ERRORS = {
    "400": "invalid input (the field is named)",
    "401": "the operator token is needed",
    "403": "a cross-site request, or a host that is not this server",
    "404": "unknown id",
    "409": "the current state forbids it",
    "503": "Redis or the database is unreachable",
}


def openapi() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for spec in ENDPOINTS:
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", spec.path)
        ] + [{"name": name, "in": "query", "schema": {"type": "string"}} for name in spec.query]
        errors = {code: {"description": why, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Error"}}}} for code, why in ERRORS.items()}
        operation: dict[str, Any] = {
            "summary": f"bgproc {spec.summary}",
            "operationId": spec.handler.__name__,
            "parameters": parameters,
            "responses": {
                str(spec.status): {
                    "description": f"the document of `bgproc {spec.summary}`",
                    "content": {"application/json": {"schema": {}}},
                },
                **errors,
            },
        }
        if spec.acts:
            operation["security"] = [{"token": []}, {"user": []}, {"session": []}]
        if spec.body:
            operation["requestBody"] = {
                "description": spec.body,
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        paths.setdefault(PREFIX + spec.path, {})[spec.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "bgproc", "version": __version__,
                 "description": "Process Requests and the Process Monitor; each answer is "
                 "the CLI's --json document of the command named in its summary."},
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR_SCHEMA},
            "securitySchemes": {
                "token": {"type": "http", "scheme": "bearer",
                          "description": "BGPROC_WEB_TOKEN"},
                "user": {"type": "http", "scheme": "basic",
                         "description": "a user of BGPROC_WEB_USERS_FILE (actions: an "
                         "operator)"},
                "session": {"type": "apiKey", "in": "cookie", "name": "bgproc_session",
                            "description": "set by /login (the token or a user); actions also need "
                            "an operator and X-CSRF-Token"},
            },
        },
    }  # fmt: skip
