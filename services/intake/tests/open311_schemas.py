"""JSON schemas of the Open311 GeoReport v2 responses, written from the specification.

Source: the GeoReport v2 page of the Open311 wiki (wiki.open311.org/GeoReport_v2),
its field tables for GET services, GET service definition, POST service request,
GET service requests and errors. Fields the specification marks optional may be
null; the ones a client relies on are required.
"""

DATETIME = {"type": "string", "format": "date-time"}
OPTIONAL_TEXT = {"type": ["string", "null"]}

SERVICES = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "array",
    "items": {
        "type": "object",
        "required": ["service_code", "service_name", "metadata", "type"],
        "properties": {
            "service_code": {"type": "string", "minLength": 1},
            "service_name": {"type": "string", "minLength": 1},
            "description": OPTIONAL_TEXT,
            "metadata": {"type": "boolean"},
            "type": {"enum": ["realtime", "batch", "blackbox"]},
            "keywords": OPTIONAL_TEXT,
            "group": OPTIONAL_TEXT,
        },
        "additionalProperties": False,
    },
}

SERVICE_DEFINITION = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["service_code", "attributes"],
    "properties": {
        "service_code": {"type": "string"},
        "attributes": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["variable", "code", "datatype", "required", "order"],
                "properties": {
                    "variable": {"type": "boolean"},
                    "code": {"type": "string"},
                    "datatype": {
                        "enum": [
                            "string",
                            "number",
                            "datetime",
                            "text",
                            "singlevaluelist",
                            "multivaluelist",
                        ]
                    },
                    "required": {"type": "boolean"},
                    "datatype_description": OPTIONAL_TEXT,
                    "order": {"type": "integer"},
                    "description": OPTIONAL_TEXT,
                    "values": {"type": "array"},
                },
            },
        },
    },
}

REQUEST_CREATED = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "properties": {
            "service_request_id": {"type": "string", "minLength": 1},
            "token": {"type": "string"},
            "service_notice": OPTIONAL_TEXT,
            "account_id": OPTIONAL_TEXT,
        },
        # Either the id (realtime services) or a token (batch ones).
        "anyOf": [{"required": ["service_request_id"]}, {"required": ["token"]}],
        "additionalProperties": False,
    },
}

SERVICE_REQUESTS = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "array",
    "items": {
        "type": "object",
        "required": ["service_request_id", "status", "service_code", "requested_datetime"],
        "properties": {
            "service_request_id": {"type": "string", "minLength": 1},
            "status": {"enum": ["open", "closed"]},
            "status_notes": OPTIONAL_TEXT,
            "service_name": OPTIONAL_TEXT,
            "service_code": {"type": "string"},
            "description": OPTIONAL_TEXT,
            "agency_responsible": OPTIONAL_TEXT,
            "service_notice": OPTIONAL_TEXT,
            "requested_datetime": DATETIME,
            "updated_datetime": {"type": ["string", "null"], "format": "date-time"},
            "expected_datetime": {"type": ["string", "null"], "format": "date-time"},
            "address": OPTIONAL_TEXT,
            "address_id": OPTIONAL_TEXT,
            "zipcode": OPTIONAL_TEXT,
            "lat": {"type": ["number", "null"], "minimum": -90, "maximum": 90},
            "long": {"type": ["number", "null"], "minimum": -180, "maximum": 180},
            "media_url": OPTIONAL_TEXT,
        },
        "additionalProperties": False,
    },
}

ERRORS = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "required": ["code", "description"],
        "properties": {
            "code": {"type": "integer", "minimum": 400, "maximum": 599},
            "description": {"type": "string", "minLength": 1},
        },
        "additionalProperties": False,
    },
}
