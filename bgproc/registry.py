"""The process registry: what may run, with which parameters (design §1).

A process is declared by decorating a function; its parameters come from the
signature (the annotation is the type, a default makes it optional). Only what
is registered here can ever be requested or run.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cached_property
from typing import Any, get_args, get_type_hints

from bgproc.errors import InvalidInput, NotFound
from bgproc.progress import Progress, checked, first_report
from bgproc.timing.alerts import AlertTargets, read_targets
from bgproc.timing.deadlines import Deadlines, check_kill_overdue, read_deadlines
from bgproc.timing.inputs import parse_text
from bgproc.timing.retry import DEFAULT_BACKOFF_S, RetryPolicy, read_retry

SECRET_MASK = "***"
MAX_PARAM_CHARS = 10_000  # a parameter is a value, not a payload
MAX_PARAM_NAME_CHARS = 100  # a name to type, not a key to stash data in
MAX_PROCESS_NAME_CHARS = 200  # what the process columns hold
PROCESS_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")
TRUE_WORDS = frozenset({"true", "1", "yes", "y", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "n", "off"})
NOT_A = {  # what a value its type's parser refused is not, with an example it takes
    "int": "is not a whole number",
    "float": "is not a number",
    "date": "is not a date (use 2027-01-31)",
    "datetime": "is not a date-time (use 2027-01-31T09:30)",
}


class Secret(str):
    """A parameter value that reaches the process but is shown as ``***`` everywhere else."""

    def __repr__(self) -> str:
        return SECRET_MASK


PARAM_TYPES: dict[type, str] = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    date: "date",
    datetime: "datetime",
    Secret: "secret",
}


class ProcessContext:
    """What a running process gets as ``ctx``: its logger, its ids, a cooperative stop flag
    and a way to say how far it has come."""

    def __init__(
        self,
        log: logging.Logger,
        run_id: int | None = None,
        request_id: int | None = None,
        stop_event: threading.Event | None = None,
        report: Callable[[Progress], None] | None = None,
    ) -> None:
        self.log = log
        self.run_id = run_id
        self.request_id = request_id
        self._stop_event = stop_event  # None: the run cannot be killed
        self._report = report  # None: progress is not recorded (a run outside a worker)
        self._progress: Progress | None = None

    def progress(self, done: float, total: float | None = None, message: str = "") -> None:
        """Report how far the run has come (``ctx.progress(40, 100, "invoices")``): shown
        with a rate and the time left by ``monitor show``/``watch``, the run's page and the
        API. Cheap enough to call for every item: the worker stores the latest report with
        the run's other changes, a few times a second at most."""
        done, total, message = checked(done, total, message)
        now = datetime.now(UTC)
        latest = self._progress
        if latest is None:
            latest = first_report(done, total, message, now)
        else:
            latest = latest.after(done, total, message, now)
        self._progress = latest
        if self._report is not None:
            self._report(latest)

    def should_stop(self) -> bool:
        """True once a kill was asked for: a killable process checks it and returns early."""
        return self._stop_event is not None and self._stop_event.is_set()

    def sleep(self, seconds: float) -> bool:
        """Wait up to ``seconds``, waking at once on a kill; True if a kill was asked for."""
        if self._stop_event is None:
            time.sleep(seconds)
            return False
        return self._stop_event.wait(seconds)


@dataclass(frozen=True)
class Redaction:
    """The values of one run's secret parameters, shown as ``***`` in whatever the run writes:
    its Process Log, its error, traceback and result (a process may log or echo a secret)."""

    secrets: tuple[str, ...] = ()  # longest first: a secret inside another goes with it

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def text(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, SECRET_MASK)
        return text

    def value(self, value: Any) -> Any:
        """A JSON-able value with each secret masked inside its strings (and keys)."""
        if not self.secrets or value is None:
            return value
        dumped = json.dumps(value)
        redacted = Redaction(tuple(json.dumps(s)[1:-1] for s in self.secrets)).text(dumped)
        if redacted == dumped:
            return value
        try:
            return json.loads(redacted)
        except ValueError:  # a secret that matched inside an escape: hide the whole value
            return SECRET_MASK


NO_REDACTION = Redaction()


@dataclass(frozen=True)
class Param:
    """One declared parameter of a process."""

    name: str
    type_name: str  # a value of PARAM_TYPES
    required: bool
    default: Any = None

    @property
    def secret(self) -> bool:
        return self.type_name == "secret"

    def describe(self) -> str:
        if self.required:
            return f"{self.name}: {self.type_name}"
        return f"{self.name}: {self.type_name} = {self.default!r}"


@dataclass(frozen=True)
class ProcessSpec:
    """A registered process: its function, its parameters and its run flags."""

    name: str
    func: Callable[..., Any] = field(repr=False)
    description: str = ""
    params: tuple[Param, ...] = ()
    accepts_any: bool = False  # declared **kwargs: any extra parameter, kept as text
    prevent_concurrent: bool = False
    killable: bool = False
    queue: str = "celery"
    time_limit_s: int | None = None
    retry: RetryPolicy | None = None  # its requests' default; ad-hoc runs follow it too
    deadlines: Deadlines | None = None  # its requests' defaults, field by field; ad-hoc too
    alerts: AlertTargets | None = None  # where its runs' alerts go, under a request's own

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def validate_params(self, given: Mapping[str, object]) -> dict[str, Any]:
        """The stored (JSON-able) form of ``given``: checked, coerced, defaults left implicit.

        Strings from the command line are fine; an unknown, missing or
        malformed parameter is an :class:`InvalidInput` naming it.
        """
        if not isinstance(given, Mapping):
            raise InvalidInput("param", "must be a mapping of names to values")
        stored: dict[str, Any] = {}
        for name, value in given.items():
            if not (isinstance(name, str) and name.isprintable() and name.strip()):
                raise InvalidInput("param", f"{name!r} is not a parameter name")
            if len(name) > MAX_PARAM_NAME_CHARS:
                raise InvalidInput("param", f"name longer than {MAX_PARAM_NAME_CHARS} characters")
            param = self.param(name)
            label = f"param {name}"
            if param is None and not self.accepts_any:
                known = ", ".join(p.name for p in self.params) or "none"
                raise InvalidInput(label, f"unknown parameter of {self.name} (known: {known})")
            if isinstance(value, str):
                parse_text(value, label, MAX_PARAM_CHARS)
            stored[name] = coerce(value, param.type_name if param else "str", label)
        missing = [p.name for p in self.params if p.required and p.name not in stored]
        if len(missing) == 1:
            raise InvalidInput(f"param {missing[0]}", f"required by {self.name}")
        if missing:  # all of them at once: one try per missing parameter helps no one
            raise InvalidInput("param", f"missing {', '.join(missing)} (required by {self.name})")
        return {k: _storable(v) for k, v in stored.items()}

    def call_kwargs(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        """The typed keyword arguments for the function, from the stored form."""
        kwargs: dict[str, Any] = {}
        for name, value in stored.items():
            param = self.param(name)
            kwargs[name] = coerce(value, param.type_name if param else "str", f"param {name}")
        return kwargs

    @cached_property
    def logger(self) -> logging.Logger:
        """Its runs' context logger (``ctx.log``), named after it."""
        return logging.getLogger(f"bgproc.process.{self.name}")

    @cached_property
    def secret_params(self) -> frozenset[str]:
        return frozenset(p.name for p in self.params if p.secret)

    def redaction(self, stored: Mapping[str, Any]) -> Redaction:
        """What a run with the stored parameters must not show: its secret values."""
        if not self.secret_params:
            return NO_REDACTION
        values = {str(v) for k, v in stored.items() if k in self.secret_params and v}
        return Redaction(tuple(sorted(values, key=len, reverse=True)))

    def send_options(self) -> dict[str, Any]:
        """Celery's options for a message of a run of it: its queue, its hard time limit."""
        limit = {"time_limit": self.time_limit_s} if self.time_limit_s else {}
        return {"queue": self.queue, **limit}

    def masked(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        """Parameters as anyone but the process may see them: secrets as ``***``."""
        secret = {p.name for p in self.params if p.secret}
        return {k: SECRET_MASK if k in secret else v for k, v in stored.items()}


def coerce(value: object, type_name: str, label: str) -> Any:
    """A value of the declared type from text or JSON, or an error naming the parameter."""
    try:
        if type_name in ("str", "secret"):
            if not isinstance(value, str):
                raise ValueError("must be text")
            return Secret(value) if type_name == "secret" else value
        if type_name == "bool":
            if isinstance(value, bool):
                return value
            word = str(value).strip().lower()
            if word in TRUE_WORDS | FALSE_WORDS:
                return word in TRUE_WORDS
            raise ValueError("must be true or false")
        if type_name == "int":
            text = str(value).strip()
            if isinstance(value, bool | float) or not text.isascii():  # int() reads '٣' as 3
                raise ValueError("must be a whole number")
            if len(text) > 30:
                raise ValueError("is too large")
            return int(text)
        if type_name == "float":
            text = str(value).strip()
            if isinstance(value, bool) or not text.isascii():
                raise ValueError("must be a number")
            number = float(text)
            if number != number or number in (float("inf"), float("-inf")):
                raise ValueError("must be a finite number")
            return number
        if type_name == "date":
            return date.fromisoformat(str(value).strip())
        if type_name == "datetime":
            return datetime.fromisoformat(str(value).strip())
    except ValueError as error:
        ours = str(error).startswith(("must", "is "))  # else the parser's own words
        raise InvalidInput(label, f"{value!r} {error if ours else NOT_A[type_name]}") from None
    raise InvalidInput(label, f"unsupported parameter type {type_name}")


def _storable(value: Any) -> Any:
    """JSON-able form of a coerced value (dates as ISO text, secrets as plain text)."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Secret):
        return str(value)
    return value


def _without_none(annotation: Any) -> Any:
    """``int | None`` is an optional ``int``: the type is what the value is when given."""
    members = [a for a in get_args(annotation) if a is not type(None)]
    return members[0] if len(members) == 1 and len(get_args(annotation)) == 2 else annotation


def _params_of(func: Callable[..., Any], name: str) -> tuple[tuple[Param, ...], bool]:
    """Declared parameters from the signature (after ``ctx``), and whether ``**kwargs`` is open."""
    hints = get_type_hints(func)
    params: list[Param] = []
    accepts_any = False
    for position, parameter in enumerate(inspect.signature(func).parameters.values()):
        if position == 0:
            continue  # ctx
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            accepts_any = True
            continue
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            raise TypeError(f"process {name}: *args cannot be given on the command line")
        annotation = _without_none(hints.get(parameter.name, str))
        if annotation not in PARAM_TYPES:
            raise TypeError(f"process {name}: parameter {parameter.name} has unsupported type")
        required = parameter.default is inspect.Parameter.empty
        params.append(
            Param(
                name=parameter.name,
                type_name=PARAM_TYPES[annotation],
                required=required,
                default=None if required else _storable(parameter.default),
            )
        )
    return tuple(params), accepts_any


class Registry:
    """Processes by name. One per interpreter (``REGISTRY``); tests may make their own."""

    def __init__(self) -> None:
        self._specs: dict[str, ProcessSpec] = {}

    def add(self, spec: ProcessSpec) -> None:
        existing = self._specs.get(spec.name)
        if existing is not None and existing.func is not spec.func:
            same_code = existing.func.__qualname__ == spec.func.__qualname__
            if not same_code:
                raise ValueError(f"process {spec.name} is registered twice")
        self._specs[spec.name] = spec

    def get(self, name: str) -> ProcessSpec:
        spec = self._specs.get(name)
        if spec is None:
            raise NotFound("process", name)
        return spec

    def deadlines_of(self, process: str | None, own: Mapping[str, Any] | None) -> Deadlines:
        """A run's deadlines: its request's own (``own``, as stored), each it does not set
        its process's default (none for a group, or a process no longer registered)."""
        mine = Deadlines.from_dict(own) if own is not None else Deadlines()
        spec = self._specs.get(process or "")
        return mine.over(spec.deadlines if spec is not None else None)

    def alert_targets_of(self, process: str) -> AlertTargets | None:
        """The alert targets ``process`` declares (None: none, or not registered)."""
        spec = self._specs.get(process)
        return spec.alerts if spec is not None else None

    def all(self) -> list[ProcessSpec]:
        return sorted(self._specs.values(), key=lambda s: s.name)

    def load(self, modules: Iterable[str]) -> None:
        """Import the modules whose processes register themselves: tasks, BGPROC_IMPORTS."""
        for module in modules:
            try:
                importlib.import_module(module)
            except ImportError as error:
                raise InvalidInput("BGPROC_IMPORTS", f"cannot import {module}: {error}") from None


REGISTRY = Registry()


def process(
    name: str,
    *,
    description: str = "",
    prevent_concurrent: bool = False,
    killable: bool = False,
    queue: str = "celery",
    time_limit_s: int | None = None,
    retries: int = 0,
    retry_backoff: int | str = DEFAULT_BACKOFF_S,
    retry_max: int | str | None = None,
    retry_jitter: bool = False,
    start_deadline: int | str | None = None,
    max_runtime: int | str | None = None,
    kill_overdue: bool = False,
    alert_webhook: str | None = None,
    alert_email: str | None = None,
    registry: Registry = REGISTRY,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``func(ctx, ...)`` as the process ``name``; the function itself is unchanged.

    ``retries`` (with ``retry_backoff``, in seconds or as ``30s``/``5m``, ``retry_max``
    and ``retry_jitter``) is the default retry policy of its runs; a request's own wins.
    ``start_deadline`` and ``max_runtime`` (seconds, or ``5m``) with ``kill_overdue`` are
    its runs' default deadlines; a request's own win, field by field. ``alert_webhook``
    (an http(s) URL) and ``alert_email`` are where its runs' alerts go by default.
    """
    if not name or not set(name) <= PROCESS_NAME_CHARS or len(name) > MAX_PROCESS_NAME_CHARS:
        raise ValueError(f"process name {name!r}: use lowercase letters, digits, '.', '_', '-'")
    try:
        retry = read_retry(
            {"retries": retries, "retry_backoff": retry_backoff, "retry_max": retry_max,
             "retry_jitter": retry_jitter}
        ) if retries else None  # fmt: skip
        deadlines = read_deadlines(
            {"start_deadline": start_deadline, "max_runtime": max_runtime,
             "kill_overdue": kill_overdue or None}
        )  # fmt: skip
        if deadlines is not None:
            check_kill_overdue(deadlines, killable, f"process {name}")
        alerts = read_targets({"alert_webhook": alert_webhook, "alert_email": alert_email})
    except InvalidInput as refusal:
        raise ValueError(f"process {name}: {refusal}") from None

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        params, accepts_any = _params_of(func, name)
        doc = inspect.getdoc(func) or ""
        registry.add(
            ProcessSpec(
                name=name,
                func=func,
                description=description or doc.split("\n", 1)[0],
                params=params,
                accepts_any=accepts_any,
                prevent_concurrent=prevent_concurrent,
                killable=killable,
                queue=queue,
                time_limit_s=time_limit_s,
                retry=retry,
                deadlines=deadlines,
                alerts=alerts,
            )
        )
        return func

    return register
