"""The controls of the private page: what each POST asks, checked, then carried out.

A control request is a POST to ``/governor/<token>/<action>`` whose body is
a form (``application/x-www-form-urlencoded``, as browsers send it) or a JSON
object, with these fields (``csrf`` as well, see ``private_page``):

=========  ===================================================================
action     fields
=========  ===================================================================
pause      ``job``
resume     ``job``
start      ``job``, ``force`` (optional: true/false; ``on`` from a checkbox)
limit      ``scope`` (node, peer, job), ``name`` (not for node), ``direction``
           (up, down), ``rate`` (as in tahoe.cfg: ``200kbps``, ``60%``,
           ``unlimited``)
clear      ``scope``, ``name``, ``direction``: drop that override
setting    ``job``, ``setting`` (allowed_times, frequency, cpu), ``value`` (as in
           tahoe.cfg: ``2200-0600``, ``1week``, ``25%``)
unset      ``job``, ``setting``: back to tahoe.cfg's value
reload     none: read tahoe.cfg again (refused, changing nothing, if invalid)
=========  ===================================================================

Malformed fields raise :class:`~tahoe_governor.status.ControlError`
before the controls are called, so a refused request changes nothing; a body
that is not a form or a JSON object (malformed, or nested deeper than
:data:`MAX_JSON_DEPTH`) is :class:`UnreadableBody` (400). The message of what
was done names the job or peer through
:func:`~tahoe_governor.status.display_names.display_name`, as it is logged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Literal, cast
from urllib.parse import parse_qsl

import attrs
from twisted.web.iweb import IRequest

from tahoe_governor.policy.job_settings import JOB_SETTINGS
from tahoe_governor.status import ControlError, GovernorControls
from tahoe_governor.status.display_names import display_name

MAX_BODY_BYTES = 64 * 1024
"""Control requests are a few fields; a larger body is refused (413)."""

MAX_JSON_DEPTH = 8
"""Control fields are flat; a JSON body nested deeper is refused (400) before parsing."""

Fields = Mapping[str, Any]


class UnreadableBody(Exception):
    """The request body is not a control request: ``code`` (413, 415 or 400) and why."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def request_fields(request: IRequest) -> dict[str, Any]:
    """The fields of a control request's body (a form or a JSON object).

    Read from ``request.content`` itself: Tahoe's request class leaves form
    bodies out of ``request.args``.
    """
    content = request.content
    if content is None:
        return {}
    content.seek(0)
    body = content.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise UnreadableBody(413, f"The request body is over {MAX_BODY_BYTES} bytes: "
                                  "expected a few form or JSON fields.")
    raw_type = request.getHeader(b"content-type") or b""
    content_type = raw_type.split(b";")[0].strip().lower()
    if content_type == b"application/json":
        if _json_depth(body) > MAX_JSON_DEPTH:
            raise UnreadableBody(400, f"The JSON body is nested more than {MAX_JSON_DEPTH} "
                                      "levels deep: expected a flat JSON object of fields.")
        try:
            value = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise UnreadableBody(400, f"The body is not valid JSON ({e}): "
                                      "expected a JSON object of fields.") from None
        if not isinstance(value, dict):
            raise UnreadableBody(400, "The JSON body is not an object: "
                                      'expected e.g. {"job": "b1", "csrf": "..."}.')
        return value
    if content_type in (b"application/x-www-form-urlencoded", b"") or not body:
        fields: dict[str, Any] = {}
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                              strict_parsing=False)
        except UnicodeDecodeError:
            raise UnreadableBody(400, "The form body is not UTF-8.") from None
        for key, value in pairs:
            if key in fields:
                raise UnreadableBody(400, f"The field {key!r} is given twice: expected it once.")
            fields[key] = value
        return fields
    raise UnreadableBody(415, f"Unsupported body type {content_type.decode('latin-1')!r}: "
                              "expected application/x-www-form-urlencoded or application/json.")


def _json_depth(body: bytes) -> int:
    """The deepest nesting of brackets in a JSON text (outside strings)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    return deepest


_JSON_KINDS = {dict: "object", list: "array", int: "number", float: "number", bool: "boolean"}


def _text(fields: Fields, key: str, expected: str) -> str:
    value = fields.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ControlError(f"Missing field {key!r}: expected {expected}.")
    if not isinstance(value, str):
        kind = _JSON_KINDS.get(type(value), "value")
        raise ControlError(f"Field {key!r} is a JSON {kind}: expected {expected} (a string).")
    return value.strip()


def _named(name: str) -> str:
    """A job name or selector from a request, quoted and escaped for messages and the log."""
    return f"'{display_name(name)}'"


def _choice(fields: Fields, key: str, choices: tuple[str, ...]) -> str:
    expected = " or ".join(repr(c) for c in choices)
    value = _text(fields, key, expected)
    if value not in choices:
        raise ControlError(f"Field {key!r} is {value!r}: expected {expected}.")
    return value


_TRUE = ("true", "on", "yes", "1")
_FALSE = ("false", "off", "no", "0", "")


def _flag(fields: Fields, key: str) -> bool:
    value = fields.get(key, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ControlError(f"Field {key!r} is {value!r}: expected true or false.")


@attrs.frozen
class LimitTarget:
    """Which cap a ``limit`` or ``clear`` request is about."""

    scope: Literal["node", "peer", "job"]
    name: str
    direction: Literal["up", "down"]

    def __str__(self) -> str:
        name = display_name(self.name)
        return " ".join(p for p in (self.scope, name, self.direction) if p)


def _limit_target(fields: Fields) -> LimitTarget:
    scope = _choice(fields, "scope", ("node", "peer", "job"))
    name = "" if scope == "node" else _text(
        fields, "name", "a job name" if scope == "job" else "a peer selector "
        "(TubID, server id or nickname)")
    direction = _choice(fields, "direction", ("up", "down"))
    return LimitTarget(cast(Literal["node", "peer", "job"], scope), name,
                       cast(Literal["up", "down"], direction))


def _pause(controls: GovernorControls, fields: Fields) -> str:
    job = _text(fields, "job", "the name of a job")
    controls.pause(job)
    return f"Paused job {_named(job)}."


def _resume(controls: GovernorControls, fields: Fields) -> str:
    job = _text(fields, "job", "the name of a job")
    controls.resume(job)
    return f"Resumed job {_named(job)}."


def _start(controls: GovernorControls, fields: Fields) -> str:
    job = _text(fields, "job", "the name of a job")
    force = _flag(fields, "force")
    controls.run_now(job, force=force)
    return f"Asked job {_named(job)} to run now" + (" (forced, outside its allowed times too)."
                                              if force else " (inside its allowed times).")


def _limit(controls: GovernorControls, fields: Fields) -> str:
    target = _limit_target(fields)
    rate = _text(fields, "rate", "a rate as in tahoe.cfg, e.g. 200kbps, 1MB/s, 60% or unlimited")
    controls.set_limit(target.scope, target.name, target.direction, rate)
    return f"Set {target} to {display_name(rate)}."


def _clear(controls: GovernorControls, fields: Fields) -> str:
    target = _limit_target(fields)
    controls.set_limit(target.scope, target.name, target.direction, None)
    return f"Cleared the override of {target}."


def _setting(controls: GovernorControls, fields: Fields) -> str:
    job = _text(fields, "job", "the name of a job")
    setting = _choice(fields, "setting", JOB_SETTINGS)
    value = _text(fields, "value", "a value as in tahoe.cfg, e.g. 2200-0600, 1week or 25%")
    controls.set_job_setting(job, setting, value)
    return f"Set job {_named(job)} {setting} to {display_name(value)}."


def _unset(controls: GovernorControls, fields: Fields) -> str:
    job = _text(fields, "job", "the name of a job")
    setting = _choice(fields, "setting", JOB_SETTINGS)
    controls.set_job_setting(job, setting, None)
    return f"Job {_named(job)} {setting} is tahoe.cfg's again."


def _reload(controls: GovernorControls, fields: Fields) -> str:
    return controls.reload()


ACTIONS: dict[str, Callable[[GovernorControls, Fields], str]] = {
    "pause": _pause,
    "resume": _resume,
    "start": _start,
    "limit": _limit,
    "clear": _clear,
    "setting": _setting,
    "unset": _unset,
    "reload": _reload,
}
"""Every control, by the last segment of its URL; each returns what it did."""
