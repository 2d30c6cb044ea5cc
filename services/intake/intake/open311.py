"""The Open311 GeoReport v2 face of intake, for 311 apps and FixMyStreet-style clients.

- ``services``: the category catalogue (public, no key).
- ``requests`` (POST, form-encoded): a service request becomes a visit of one
  visitor on the ``online`` channel with one case, disposition ``route``. The
  ``api_key`` names the reception unit that receives it: ``NIGHTTALK_OPEN311_KEYS``
  holds ``key=unit`` pairs separated by commas.
- ``requests`` (GET) and ``requests/<id>``: the unit's online cases, with
  ``open``/``closed``, ``expected_datetime`` and ``agency_responsible`` from
  routing's events. The ``api_key`` is required here too: petitions are not a
  public feed, and a key reads only its own unit's online cases.

Every answer comes as JSON or XML by the extension; errors as Open311 error lists.
The service_request_id is the case number.
"""

from __future__ import annotations

import datetime as dt
import hmac
import os
import re
from typing import Any
from xml.etree import ElementTree as ET

from flask import Response, current_app, jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)
from sqlalchemy import or_, select

from intake import models, usecases
from intake.catalogue import CATEGORIES
from intake.schemas import CASE_NUMBER, NO_CONTROL, PHONE, has_control, instant
from servicekit.localtime import local_zone

blp = Blueprint(
    "open311",
    __name__,
    url_prefix="/open311/v2",
    description=(
        "Open311 GeoReport v2: the category catalogue as services, online service "
        "requests as cases. Append .json or .xml; errors are Open311 error lists."
    ),
)

FORMATS = ("json", "xml")
MAX_RESULTS = 200
SERVICE_NOTICE = "受理后一个月内答复 (answered within one month of routing)"
CJK = re.compile(r"[\u4e00-\u9fff]")
# What XML 1.0 cannot hold (its production Char): most control characters, surrogates,
# U+FFFE and U+FFFF. The input rules refuse them, but one stored before, or by some other
# way in, must not make the unit's whole feed unreadable.
NOT_XML = re.compile(r"[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


# -- configuration and helpers ---------------------------------------------------------


def api_keys() -> dict[str, str]:
    """Return the configured api_key → reception unit map (``NIGHTTALK_OPEN311_KEYS``)."""
    pairs: dict[str, str] = {}
    for entry in os.environ.get("NIGHTTALK_OPEN311_KEYS", "").split(","):
        key, sep, unit = entry.strip().partition("=")
        if sep and key.strip() and unit.strip():
            pairs[key.strip()] = unit.strip()
    return pairs


def unit_of(api_key: str | None) -> str:
    """Return the reception unit of an api_key, or refuse with 403."""
    if api_key:
        for known, unit in api_keys().items():
            if hmac.compare_digest(known.encode(), api_key.encode()):
                return unit
    abort(403, message="api_key: missing or not a key of any reception unit")


def _format(fmt: str) -> str:
    if fmt not in FORMATS:
        abort(404, message=f"format: use .json or .xml, not .{fmt[:10]}")
    return fmt


def _xml(root: str, item: str, rows: list[dict[str, Any]]) -> bytes:
    top = ET.Element(root)
    for row in rows:
        element = ET.SubElement(top, item)
        for name, value in row.items():
            child = ET.SubElement(element, name)
            if isinstance(value, list):
                for entry in value:
                    sub = ET.SubElement(child, name.rstrip("s"))
                    for key, val in entry.items():
                        ET.SubElement(sub, key).text = _text(val)
            else:
                child.text = _text(value)
    return _document(top)


def _document(top: ET.Element) -> bytes:
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(top, encoding="unicode").encode()
    )


def _text(value: Any) -> str | None:
    """Return a value as XML text; a character XML cannot hold shows as U+FFFD."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return NOT_XML.sub("\ufffd", str(value))


def render(fmt: str, root: str, item: str, rows: list[dict[str, Any]], status: int = 200):
    """Answer a list of rows as JSON or as Open311 XML (``<root><item>…</item></root>``)."""
    if fmt == "xml":
        return Response(_xml(root, item, rows), status, mimetype="text/xml")
    response = jsonify(rows)
    response.status_code = status
    return response


def _when(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(local_zone()).isoformat()


def error_list(code: int, message: str, errors: dict | None = None) -> Response:
    """Answer an error of this face as an Open311 error list, one entry per field.

    Every error on ``/open311/`` comes here (``servicekit.web.add_error_face``), from the
    views and from the layers before them alike: the request guard, the router's 404 and
    405, an oversize body. Bad input is 400, as GeoReport v2 answers it; the list comes as
    JSON or XML by the extension of the path.
    """
    if code == 422:
        code = 400
    descriptions = [f"{name}: {problem}" for name, problem in _problems(errors)] or [message]
    rows = [{"code": code, "description": d} for d in descriptions]
    return render(_requested_format(), "errors", "error", rows, code)


def _problems(errors: dict | None):
    """Yield (field, problem) of errors given by location, then field."""
    for by_field in (errors or {}).values():
        for name, problems in (by_field if isinstance(by_field, dict) else {}).items():
            for problem in problems if isinstance(problems, list) else [problems]:
                yield name, problem


def _requested_format() -> str:
    # A path the router matched names it in view_args; one it did not (a 404, a 405) ends
    # in its extension all the same.
    fmt = (request.view_args or {}).get("fmt") or request.path.rpartition(".")[2]
    return fmt if fmt in FORMATS else "json"


# -- schemas -----------------------------------------------------------------------------


class ServiceOut(Schema):
    service_code = fields.String()
    service_name = fields.String()
    description = fields.String()
    metadata = fields.Boolean()
    type = fields.String()
    keywords = fields.String()
    group = fields.String()


class ServiceDefinitionOut(Schema):
    service_code = fields.String()
    attributes = fields.List(fields.Dict())


class Open311Error(Schema):
    code = fields.Integer()
    description = fields.String()


class ApiKeyQuery(Schema):
    class Meta:
        unknown = RAISE

    api_key = fields.String(required=True, validate=validate.Length(min=1, max=200))


class RequestIn(Schema):
    """POST requests: the GeoReport v2 fields (attributes: no service has metadata)."""

    class Meta:
        unknown = RAISE

    api_key = fields.String(required=True, validate=validate.Length(min=1, max=200))
    jurisdiction_id = fields.String(validate=[validate.Length(max=100), NO_CONTROL])
    service_code = fields.String(
        required=True,
        validate=validate.OneOf(
            sorted(CATEGORIES), error="unknown service_code; one of: {choices}"
        ),
    )
    lat = fields.Float(validate=validate.Range(min=-90, max=90), allow_nan=False)
    long = fields.Float(validate=validate.Range(min=-180, max=180), allow_nan=False)
    address_string = fields.String(validate=[validate.Length(min=1, max=200), NO_CONTROL])
    address_id = fields.String(validate=[validate.Length(max=100), NO_CONTROL])
    email = fields.Email(validate=validate.Length(max=200))  # accepted, not stored
    device_id = fields.String(validate=[validate.Length(max=100), NO_CONTROL])
    account_id = fields.String(validate=[validate.Length(max=100), NO_CONTROL])
    first_name = fields.String(validate=[validate.Length(max=25), NO_CONTROL])
    last_name = fields.String(validate=[validate.Length(max=25), NO_CONTROL])
    phone = fields.String(validate=PHONE)
    description = fields.String(validate=[validate.Length(min=1, max=4000), NO_CONTROL])
    media_url = fields.Url(schemes={"http", "https"}, validate=validate.Length(max=500))

    @validates_schema
    def _located(self, data, **kwargs):
        has_point = "lat" in data and "long" in data
        if ("lat" in data) != ("long" in data):
            raise ValidationError("give lat and long together", "long" if "lat" in data else "lat")
        if not (has_point or data.get("address_string") or data.get("address_id")):
            raise ValidationError(
                "a location is required: lat and long, address_string or address_id",
                "address_string",
            )
        if not (data.get("description") or "").strip():
            raise ValidationError("describe the issue", "description")


class RequestCreatedOut(Schema):
    service_request_id = fields.String()
    service_notice = fields.String()
    account_id = fields.String(allow_none=True)


def _csv(pattern: validate.Validator, *, most: int):
    def check(value: str) -> None:
        parts = value.split(",")
        if len(parts) > most:
            raise ValidationError(f"at most {most} values")
        for part in parts:
            pattern(part.strip())

    return check


class RequestsQuery(Schema):
    class Meta:
        unknown = RAISE

    api_key = fields.String(required=True, validate=validate.Length(min=1, max=200))
    jurisdiction_id = fields.String(validate=validate.Length(max=100))
    service_request_id = fields.String(validate=_csv(CASE_NUMBER, most=50))
    service_code = fields.String(
        validate=_csv(validate.OneOf(sorted(CATEGORIES), error="unknown service_code"), most=10)
    )
    start_date = instant()
    end_date = instant()
    status = fields.String(
        validate=_csv(validate.OneOf(["open", "closed"], error="open or closed"), most=2)
    )

    @validates_schema
    def _period(self, data, **kwargs):
        if (
            data.get("start_date")
            and data.get("end_date")
            and data["end_date"] < data["start_date"]
        ):
            raise ValidationError("must not be before start_date", "end_date")


class ServiceRequestOut(Schema):
    service_request_id = fields.String()
    status = fields.String(metadata={"description": "open or closed"})
    status_notes = fields.String(allow_none=True)
    service_name = fields.String()
    service_code = fields.String()
    description = fields.String(allow_none=True)
    agency_responsible = fields.String(allow_none=True)
    service_notice = fields.String(allow_none=True)
    requested_datetime = fields.String(metadata={"format": "date-time"})
    updated_datetime = fields.String(metadata={"format": "date-time"})
    expected_datetime = fields.String(allow_none=True, metadata={"format": "date-time"})
    address = fields.String(allow_none=True)
    address_id = fields.String(allow_none=True)
    zipcode = fields.String(allow_none=True)
    lat = fields.Float(allow_none=True)
    long = fields.Float(allow_none=True)
    media_url = fields.String(allow_none=True)


ERRORS = {
    400: "Bad input: an Open311 error list, one error per field.",
    403: "api_key missing or unknown.",
    404: "No such service, request or format.",
}


def _errors(*codes: int):
    def decorate(view):
        for code in codes:
            view = blp.alt_response(code, schema=Open311Error(many=True), description=ERRORS[code])(
                view
            )
        return view

    return decorate


# -- services ----------------------------------------------------------------------------


def _service(code: str) -> dict[str, Any]:
    return {
        "service_code": code,
        "service_name": CATEGORIES[code],
        "description": f"夜谈联动 category: {CATEGORIES[code]}",
        "metadata": False,
        "type": "realtime",
        "keywords": code.replace("_", ","),
        "group": "nighttalk",
    }


@blp.route("/services.<fmt>")
class Services(MethodView):
    @blp.response(200, ServiceOut(many=True))
    @_errors(400, 404)
    @blp.doc(security=[])
    def get(self, fmt: str):
        """List the services: the category catalogue."""
        fmt = _format(fmt)
        if request.args:
            abort(400, message=f"unknown argument: {sorted(request.args)[0][:40]}")
        return render(fmt, "services", "service", [_service(c) for c in CATEGORIES])


@blp.route("/services/<code>.<fmt>")
class ServiceDefinition(MethodView):
    @blp.response(200, ServiceDefinitionOut)
    @_errors(404)
    @blp.doc(security=[])
    def get(self, code: str, fmt: str):
        """Read a service definition (no service has extra attributes)."""
        fmt = _format(fmt)
        if code not in CATEGORIES:
            abort(404, message="service_code: no such service")
        definition = {"service_code": code, "attributes": []}
        if fmt == "xml":
            top = ET.Element("service_definition")
            ET.SubElement(top, "service_code").text = code
            ET.SubElement(top, "attributes")
            return Response(_document(top), mimetype="text/xml")
        return jsonify(definition)


# -- requests ----------------------------------------------------------------------------


def _visitor_name(data: dict[str, Any]) -> str:
    first, last = (data.get("first_name") or "").strip(), (data.get("last_name") or "").strip()
    if not (first or last):
        return "匿名"  # anonymous: the reporter gave no name
    if CJK.search(first + last):
        return (last + first)[:50]  # 林 + 河清
    return " ".join(p for p in (first, last) if p)[:50]


def _summary(description: str) -> str:
    first_line = description.strip().splitlines()[0].strip()
    return first_line[:200]


def _status(case: models.Case) -> str:
    return "open" if case.status in models.UNANSWERED else "closed"


def _notes(case: models.Case, names: dict[str, str]) -> str:
    unit = names.get(case.responsible_unit or "", case.responsible_unit)
    return {
        models.OPEN: "registered; being routed to the responsible unit",
        models.ROUTED: f"routed to {unit}",
        models.RESOLVED: f"answered by {unit}",
        models.RESOLVED_ON_SPOT: "answered on the spot",
        models.REOPENED: "reopened: the answer did not satisfy the visitor; being handled again",
        models.CLOSED: "closed",
    }.get(case.status, case.status)


def service_request(case: models.Case, names: dict[str, str]) -> dict[str, Any]:
    """Return a case as a GeoReport v2 service request."""
    return {
        "service_request_id": case.case_number,
        "status": _status(case),
        "status_notes": _notes(case, names),
        "service_name": CATEGORIES.get(case.category, case.category),
        "service_code": case.category,
        "description": case.details or case.summary,
        "agency_responsible": (
            names.get(case.responsible_unit, case.responsible_unit)
            if case.responsible_unit
            else None
        ),
        "service_notice": SERVICE_NOTICE,
        "requested_datetime": _when(case.received_at),
        "updated_datetime": _when(case.updated_at or case.received_at),
        "expected_datetime": _when(case.due_at),
        "address": None if _address_id(case) else case.location,
        "address_id": _address_id(case),
        "zipcode": None,
        "lat": case.latitude,
        "long": case.longitude,
        "media_url": case.media_url,
    }


# A request located only by the jurisdiction's address identifier keeps it as the case's
# location, so that the partner reading the case knows where to go.
ADDRESS_ID = "address_id "


def _location(data: dict[str, Any]) -> str | None:
    """Return the case's location: the address, else the point, else the address identifier."""
    if data.get("address_string"):
        return data["address_string"]
    if "lat" in data:
        return f"{data['lat']:.6f},{data['long']:.6f}"
    if data.get("address_id"):
        return ADDRESS_ID + data["address_id"]
    return None


def _address_id(case: models.Case) -> str | None:
    """Return the address identifier a case was located by, if that was its only location."""
    location = case.location or ""
    if case.latitude is None and location.startswith(ADDRESS_ID):
        return location.removeprefix(ADDRESS_ID)
    return None


def _unit_names(session, cases: list[models.Case]) -> dict[str, str]:
    codes = {c.responsible_unit for c in cases if c.responsible_unit}
    if not codes:
        return {}
    return dict(
        session.execute(
            select(models.Unit.code, models.Unit.name).where(models.Unit.code.in_(codes))
        ).all()
    )


@blp.route("/requests.<fmt>")
class Requests(MethodView):
    @blp.arguments(RequestIn(), location="form", error_status_code=400)
    @blp.response(200, RequestCreatedOut(many=True))
    @_errors(400, 403, 404)
    @blp.alt_response(413, schema=Open311Error(many=True), description="Body over the size limit.")
    @blp.alt_response(415, schema=Open311Error(many=True), description="Body is not form-encoded.")
    @blp.doc(security=[])
    def post(self, data, fmt: str):
        """Create a service request: a case on the online channel, routed by routing.

        Send the form fields of GeoReport v2 (``application/x-www-form-urlencoded``).
        An ``Idempotency-Key`` header, if sent, makes a retry return the first answer.
        """
        fmt = _format(fmt)
        unit = unit_of(data.get("api_key"))
        issue: dict[str, Any] = {
            "category": data["service_code"],
            "summary": _summary(data["description"]),
            "details": data["description"].strip(),
            "location": _location(data),
            "disposition": {"action": "route"},
            "latitude": data.get("lat"),
            "longitude": data.get("long"),
            "media_url": data.get("media_url"),
        }
        visit = {
            "channel": "online",
            "received_at": dt.datetime.now(dt.UTC),
            "headcount": 1,
            "visitor": {
                k: v
                for k, v in {"name": _visitor_name(data), "phone": data.get("phone")}.items()
                if v
            },
            "issues": [issue],
            "follow_ups": [],
        }
        key = request.headers.get("Idempotency-Key")
        if key is not None and not re.fullmatch(r"[\x21-\x7e]{1,200}", key):
            abort(400, message="Idempotency-Key: must be 1 to 200 printable ASCII characters")
        form = {k: request.form.getlist(k) for k in sorted(request.form)}
        try:
            body, _created = usecases.register_visit(
                current_app.extensions["runtime"].unit_of_work(),
                unit=unit,
                registered_by=f"open311:{unit}",
                data=visit,
                idempotency_key=f"open311:{key}" if key else None,
                fingerprint=usecases.request_fingerprint({"open311": form}),
            )
        except usecases.IdempotencyConflict:
            abort(400, message="Idempotency-Key: already used for a different request")
        rows = [
            {
                "service_request_id": c["case_number"],
                "service_notice": SERVICE_NOTICE,
                "account_id": data.get("account_id"),
            }
            for c in body["cases"]
        ]
        return render(fmt, "service_requests", "request", rows)

    @blp.arguments(RequestsQuery(), location="query", unknown="raise", error_status_code=400)
    @blp.response(200, ServiceRequestOut(many=True))
    @_errors(400, 403, 404)
    @blp.doc(security=[])
    def get(self, query, fmt: str):
        """List your unit's online service requests, newest first (at most 200).

        Filter by service_request_id (comma-separated case numbers), service_code,
        start_date/end_date (when requested) and status (open, closed).
        """
        fmt = _format(fmt)
        unit = unit_of(query.get("api_key"))
        conditions = [models.Case.unit == unit, models.Case.channel == "online"]
        if query.get("service_request_id"):
            ids = [p.strip() for p in query["service_request_id"].split(",")]
            conditions.append(models.Case.case_number.in_(ids))
        if query.get("service_code"):
            codes = [p.strip() for p in query["service_code"].split(",")]
            conditions.append(models.Case.category.in_(codes))
        if query.get("start_date"):
            conditions.append(models.Case.received_at >= query["start_date"])
        if query.get("end_date"):
            conditions.append(models.Case.received_at <= query["end_date"])
        if query.get("status"):
            wanted = {p.strip() for p in query["status"].split(",")}
            if wanted == {"open"}:
                conditions.append(models.Case.status.in_(models.UNANSWERED))
            elif wanted == {"closed"}:
                conditions.append(models.Case.status.not_in(models.UNANSWERED))
        with current_app.extensions["runtime"].reading() as session:
            cases = session.scalars(
                select(models.Case)
                .where(*conditions)
                .order_by(models.Case.received_at.desc(), models.Case.case_number.desc())
                .limit(MAX_RESULTS)
            ).all()
            names = _unit_names(session, cases)
            rows = [service_request(c, names) for c in cases]
        return render(fmt, "service_requests", "request", rows)


@blp.route("/requests/<ref>.<fmt>")
class RequestById(MethodView):
    @blp.arguments(ApiKeyQuery(), location="query", unknown="raise", error_status_code=400)
    @blp.response(200, ServiceRequestOut(many=True))
    @_errors(400, 403, 404)
    @blp.doc(security=[])
    def get(self, query, ref: str, fmt: str):
        """Read one service request by its id (the case number)."""
        fmt = _format(fmt)
        unit = unit_of(query.get("api_key"))
        if len(ref) > 90 or has_control(ref):
            abort(404, message="service_request_id: no such request")
        with current_app.extensions["runtime"].reading() as session:
            case = session.scalars(
                select(models.Case).where(
                    or_(models.Case.case_number == ref, models.Case.id == ref),
                    models.Case.unit == unit,
                    models.Case.channel == "online",
                )
            ).first()
            if case is None:
                abort(404, message="service_request_id: no such request")
            rows = [service_request(case, _unit_names(session, [case]))]
        return render(fmt, "service_requests", "request", rows)


@blp.before_request
def _form_only():
    """Refuse a POST body that is not form-encoded, as GeoReport v2 clients send."""
    if request.method == "POST" and request.mimetype not in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        abort(415, message="send the request form-encoded (application/x-www-form-urlencoded)")
