"""The OpenAPI 3.1 document of /api/v1, built from small helpers so shared schemas are written once.

`build_document()` returns the whole document; `GET /api/v1/openapi.json` serves it. The
paths come in two parts: `_paths()` documents the fleet, alarms and ROI routes, and
`_channel_export_command_paths()` documents the deals, exports and commands routes; where
both parts name a path, the operations are merged. tests/integration/test_openapi.py
compares the document with `app.url_map` both ways and runs schemathesis against it.
"""

from __future__ import annotations

from typing import Any, Final

from app.db import queries
from app.domain.numbers import MAX_ID
from roi.inputs import MAX_HORIZON_YEARS, SEGMENTS

JsonObject = dict[str, Any]

API_PREFIX: Final = "/api/v1"
ROLES_NOTE: Final = (
    "ROI endpoints are for vendor admins, sales engineers and distributor managers and reps; "
    "utility viewers and building managers get 403."
)
TIME_NOTE: Final = "RFC 3339 timestamp, e.g. 2026-03-02T00:00:00Z"


# --- Small schema helpers ---------------------------------------------------------------------


def ref(name: str) -> JsonObject:
    """Point at a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: JsonObject) -> JsonObject:
    """Allow null as well (OpenAPI 3.1 spells it as a JSON Schema type list)."""
    if "type" in schema and isinstance(schema["type"], str):
        return {**schema, "type": [schema["type"], "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def obj(
    properties: JsonObject, required: tuple[str, ...] | None = None, *, closed: bool = False
) -> JsonObject:
    """An object schema; every property is required unless `required` says otherwise."""
    schema: JsonObject = {
        "type": "object",
        "properties": properties,
        "required": list(properties if required is None else required),
    }
    if closed:
        schema["additionalProperties"] = False
    return schema


def array(items: JsonObject, **extra: Any) -> JsonObject:
    """An array schema."""
    return {"type": "array", "items": items, **extra}


STRING: Final[JsonObject] = {"type": "string"}
NUMBER: Final[JsonObject] = {"type": "number"}
INTEGER: Final[JsonObject] = {"type": "integer"}
BOOLEAN: Final[JsonObject] = {"type": "boolean"}
TIME: Final[JsonObject] = {"type": "string", "format": "date-time"}
MAYBE_TIME: Final[JsonObject] = nullable(TIME)
MAYBE_NUMBER: Final[JsonObject] = nullable(NUMBER)
MAYBE_STRING: Final[JsonObject] = nullable(STRING)
SEGMENT: Final[JsonObject] = {"type": "string", "enum": list(SEGMENTS)}


# --- Small operation helpers ------------------------------------------------------------------


def json_body(schema: JsonObject) -> JsonObject:
    """A JSON content map."""
    return {"application/json": {"schema": schema}}


def ok(description: str, schema: JsonObject) -> JsonObject:
    """A JSON success response."""
    return {"description": description, "content": json_body(schema)}


def download(description: str, media_types: tuple[str, ...]) -> JsonObject:
    """A file download response in one of `media_types`."""
    return {
        "description": description,
        "headers": {"Content-Disposition": {"$ref": "#/components/headers/ContentDisposition"}},
        "content": {m: {"schema": {"type": "string"}} for m in media_types},
    }


def errors(*codes: int) -> JsonObject:
    """Reference the shared JSON error responses for `codes`."""
    return {str(code): {"$ref": f"#/components/responses/Error{code}"} for code in codes}


def query(
    name: str,
    schema: JsonObject,
    description: str,
    *,
    required: bool = False,
    example: Any = None,
) -> JsonObject:
    """A query parameter."""
    param = {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }
    return param if example is None else {**param, "example": example}


def path_param(name: str, schema: JsonObject, description: str, example: Any) -> JsonObject:
    """A path parameter, with an example that exists in the test and demo data."""
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema,
        "example": example,
    }


def operation(
    operation_id: str,
    summary: str,
    tag: str,
    responses: JsonObject,
    *,
    parameters: list[JsonObject] | None = None,
    body: JsonObject | None = None,
    body_required: bool = True,
    public: bool = False,
    description: str | None = None,
) -> JsonObject:
    """One operation; login-protected ones answer 401 without a session or bearer token."""
    op: JsonObject = {"operationId": operation_id, "summary": summary, "tags": [tag]}
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {"required": body_required, "content": json_body(body)}
        responses = {**responses, **errors(413)}
    # Any operation answers 400 to a NUL character in its path or query (api.check_api_input).
    responses = {**errors(400), **responses}
    if public:
        op["security"] = []
    else:
        responses = {**responses, **errors(401)}
    op["responses"] = dict(sorted(responses.items()))
    return op


METER_ID: Final = path_param("meter_id", STRING, "Meter id", "glpl-00000")
# Ids are 32-bit INTEGER columns (MAX_ID); larger ones answer 404 (api.py).
ID: Final[JsonObject] = {"type": "integer", "minimum": 0, "maximum": MAX_ID}
SCENARIO_ID: Final = path_param("scenario_id", ID, "Scenario id", 1)
VERSION: Final = path_param("version", ID, "Version number", 1)
START: Final = query(
    "start", STRING, f"Range start (inclusive), {TIME_NOTE}", example="2026-03-02T00:00:00Z"
)
END: Final = query(
    "end",
    STRING,
    f"Range end (exclusive), {TIME_NOTE}; at most 31 days after start",
    example="2026-03-02T06:00:00Z",
)
UTILITY: Final = query(
    "utility", {"type": "string", "minLength": 1}, "Utility id", required=True, example="glpl"
)
FORMAT: Final = query(
    "format",
    {"type": "string", "enum": ["pdf", "xlsx", "csv"]},
    "Report format",
    required=True,
    example="csv",
)
REPORT_TYPES: Final = (
    "application/pdf",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "text/csv",
)


# --- Components -------------------------------------------------------------------------------


def _schemas() -> JsonObject:
    input_item = obj(
        {
            "value": NUMBER,
            "unit": STRING,
            "source": STRING,
            "low": NUMBER,
            "high": NUMBER,
            "description": STRING,
            "min": NUMBER,
            "max": MAYBE_NUMBER,
            "integer": BOOLEAN,
        }
    )
    input_edit = {
        "oneOf": [
            NUMBER,
            {
                "type": "object",
                "description": "value, low, high and source may change; the rest must match",
                "properties": {
                    "value": NUMBER,
                    "low": NUMBER,
                    "high": NUMBER,
                    "source": STRING,
                    "unit": STRING,
                    "description": STRING,
                    "min": NUMBER,
                    "max": MAYBE_NUMBER,
                    "integer": BOOLEAN,
                },
                "additionalProperties": False,
            },
        ]
    }
    input_request: JsonObject = {
        "type": "object",
        "description": "An ROI input document: only `segment` is required; the rest default.",
        "properties": {
            "segment": SEGMENT,
            "horizon_years": {"type": "integer", "minimum": 1, "maximum": MAX_HORIZON_YEARS},
            "discount_rate": {"type": "number", "minimum": 0, "maximum": 1},
            "discount_rate_source": STRING,
            "model_version": STRING,
            "inputs": {"type": "object", "additionalProperties": input_edit},
        },
        "required": ["segment"],
        "additionalProperties": False,
        "example": {"segment": "iou", "horizon_years": 12},
    }
    # POST /roi and /roi/report also take report metadata beside the document.
    report_request = {
        **input_request,
        "properties": {
            **input_request["properties"],
            "customer_name": {"type": "string", "minLength": 1, "maxLength": 120},
            "utility_id": {"type": "string", "minLength": 1, "maxLength": 64},
        },
        "example": {"segment": "iou", "customer_name": "Great Lakes Power", "utility_id": "glpl"},
    }
    metrics = obj(
        {
            "npv": NUMBER,
            "irr": MAYBE_NUMBER,
            "mirr": MAYBE_NUMBER,
            "simple_payback_years": MAYBE_NUMBER,
            "discounted_payback_years": MAYBE_NUMBER,
        }
    )
    case = obj(
        {
            "npv": NUMBER,
            "irr": MAYBE_NUMBER,
            "simple_payback_years": MAYBE_NUMBER,
            "discounted_payback_years": MAYBE_NUMBER,
        }
    )
    number_map = {"type": "object", "additionalProperties": NUMBER}
    tornado_bar = obj(
        {
            "name": STRING,
            "unit": STRING,
            "base_value": NUMBER,
            "low_value": NUMBER,
            "high_value": NUMBER,
            "npv_at_low": NUMBER,
            "npv_at_high": NUMBER,
            "swing": NUMBER,
        }
    )
    monte_carlo = obj(
        {
            "draws": INTEGER,
            "distribution": STRING,
            "p10": NUMBER,
            "p50": NUMBER,
            "p90": NUMBER,
            "mean": NUMBER,
            "probability_npv_positive": NUMBER,
            "probability_payback": NUMBER,
            "probability_discounted_payback": NUMBER,
            "histogram": obj({"edges": array(NUMBER), "counts": array(NUMBER)}),
            "seed": INTEGER,
        }
    )
    evaluation = obj(
        {
            "segment": SEGMENT,
            "horizon_years": INTEGER,
            "discount_rate": NUMBER,
            "npv": NUMBER,
            "npv_convention": {"type": "string", "enum": ["year0"]},
            "irr": MAYBE_NUMBER,
            "mirr": MAYBE_NUMBER,
            "simple_payback_years": MAYBE_NUMBER,
            "discounted_payback_years": MAYBE_NUMBER,
            "benefit_cost_ratio": MAYBE_NUMBER,
            "cash_flows": array(number_map),
            "savings_by_category": number_map,
            "after_tax": nullable(metrics),
            "budget": nullable(array(number_map)),
            "risks": array(STRING),
            "model_version": STRING,
            "notes": array(STRING),
            "tornado": obj({"base_npv": NUMBER, "bars": array(tornado_bar)}),
            "cases": {"type": "object", "additionalProperties": case},
            "monte_carlo": monte_carlo,
            "labels": obj(
                {
                    "inputs": {"type": "object", "additionalProperties": STRING},
                    "categories": {"type": "object", "additionalProperties": STRING},
                }
            ),
        }
    )
    network_mix = obj(
        {
            "choices": array(
                obj(
                    {
                        "site_id": STRING,
                        "area": {"type": "string", "enum": ["urban", "rural"]},
                        "network": {"type": "string", "enum": ["cellular", "private"]},
                        "cost_pv": NUMBER,
                        "options": number_map,
                    }
                )
            ),
            "counts": obj({"cellular": INTEGER, "private": INTEGER}),
            "total_cost_pv": NUMBER,
            "horizon_years": INTEGER,
            "discount_rate": NUMBER,
        }
    )
    non_negative = {"type": "number", "minimum": 0}
    network_request = obj(
        {
            "sites": array(
                obj(
                    {
                        "site_id": {"type": "string", "minLength": 1, "maxLength": 64},
                        "area": {"type": "string", "enum": ["urban", "rural"]},
                        "cellular_coverage": BOOLEAN,
                        "private_coverage": nullable(BOOLEAN),
                    },
                    ("site_id", "area"),
                ),
                minItems=1,
                maxItems=20_000,
            ),
            "costs": {
                "type": "object",
                "properties": {
                    "cellular_endpoint": non_negative,
                    "cellular_monthly": non_negative,
                    "rural_cellular_extra": non_negative,
                    "private_endpoint": non_negative,
                    "private_monthly": non_negative,
                    "cost_escalation": {"type": "number", "minimum": 0, "maximum": 1},
                },
                "additionalProperties": False,
            },
            "horizon_years": {"type": "integer", "minimum": 1, "maximum": MAX_HORIZON_YEARS},
            "discount_rate": {"type": "number", "minimum": 0, "maximum": 1},
        },
        ("sites",),
        closed=True,
    ) | {
        "example": {
            "sites": [
                {"site_id": "a", "area": "urban"},
                {"site_id": "b", "area": "rural", "cellular_coverage": False},
            ]
        }
    }
    scenario = obj(
        {
            "id": INTEGER,
            "name": STRING,
            "customer_name": STRING,
            "segment": SEGMENT,
            "distributor_id": MAYBE_STRING,
            "utility_id": MAYBE_STRING,
            "latest_version": INTEGER,
            "created_at": TIME,
            "updated_at": TIME,
        }
    )
    version_props: JsonObject = {
        "version": INTEGER,
        "model_version": STRING,
        "created_at": TIME,
        "created_by": MAYBE_STRING,
        "note": STRING,
        "npv": NUMBER,
        "changes": array(obj({"field": STRING, "from": {}, "to": {}})),
    }
    name_field = {"type": "string", "minLength": 1, "maxLength": 120}
    note_field = {"type": "string", "minLength": 1, "maxLength": 2000}
    return {
        "Error": obj(
            {
                "error": {"type": "string", "description": "HTTP reason, e.g. Bad Request"},
                "message": {"type": "string", "description": "What was wrong, in plain words"},
                "status": {"type": "integer", "description": "The HTTP status code again"},
                "field": {
                    "type": "string",
                    "description": "The request field at fault (ROI, commands and deals APIs)",
                },
            },
            ("error", "message", "status"),
        ),
        "Health": obj(
            {
                "status": {"type": "string", "enum": ["ok", "degraded"]},
                "meters": INTEGER,
                "readings": INTEGER,
                "readings_exact": BOOLEAN,
                "dead_letters": INTEGER,
                "dead_letters_exact": BOOLEAN,
                "broker_connected": BOOLEAN,
                "ingest_seen_at": MAYBE_TIME,
                "vee_done_at": MAYBE_TIME,
            }
        ),
        "TokenRequest": obj(
            {
                "email": {"type": "string", "minLength": 1},
                "password": {"type": "string", "minLength": 1},
            }
        ),
        "Token": obj(
            {
                "token": STRING,
                "token_type": {"type": "string", "enum": ["Bearer"]},
                "expires_in": {"type": "integer", "description": "Seconds the token stays valid"},
            }
        ),
        "Meter": obj(
            {
                "id": STRING,
                "utility_id": STRING,
                "site_name": STRING,
                "building_type": STRING,
                "network": STRING,
                "peak_kw": NUMBER,
                "status": STRING,
                "status_at": MAYBE_TIME,
                "last_interval_start": MAYBE_TIME,
                "last_seen_at": MAYBE_TIME,
                "lat": NUMBER,
                "lon": NUMBER,
            }
        ),
        "MeterList": obj({"meters": array(ref("Meter")), "limit": INTEGER, "offset": INTEGER}),
        "Reading": obj(
            {
                "start": TIME,
                "seconds": INTEGER,
                "kwh": NUMBER,
                "kvarh": NUMBER,
                "demand_kw": NUMBER,
                "voltage": array(NUMBER, maxItems=3),
                "flags": array(STRING),
                "quality": STRING,
            }
        ),
        "Readings": obj({"meter_id": STRING, "readings": array(ref("Reading"))}),
        "FleetSummary": obj(
            {
                "generated_at": TIME,
                "utilities": array(
                    obj(
                        {
                            "id": STRING,
                            "name": STRING,
                            "segment": STRING,
                            "meters": INTEGER,
                            "online": INTEGER,
                            "offline": INTEGER,
                            "readings_last_hour": INTEGER,
                        }
                    )
                ),
            }
        ),
        "Alarm": obj(
            {
                "key": STRING,
                "kind": STRING,
                "severity": STRING,
                "meter_id": STRING,
                "site_name": STRING,
                "utility": STRING,
                "raised_at": TIME,
                "summary": STRING,
                "acknowledged_by": MAYBE_STRING,
                "acknowledged_at": MAYBE_TIME,
            }
        ),
        "AlarmList": obj({"alarms": array(ref("Alarm"))}),
        "AcknowledgeRequest": obj({"note": {"type": "string", "maxLength": 500}}, (), closed=False),
        "RoiInputItem": input_item,
        "RoiInputDocument": obj(
            {
                "segment": SEGMENT,
                "horizon_years": INTEGER,
                "discount_rate": NUMBER,
                "discount_rate_source": STRING,
                "model_version": STRING,
                "inputs": {"type": "object", "additionalProperties": ref("RoiInputItem")},
            }
        ),
        "RoiInputRequest": input_request,
        "RoiReportRequest": report_request,
        "RoiEvaluation": evaluation,
        "RoiCalibration": obj(
            {
                "document": ref("RoiInputDocument"),
                "customer_name": STRING,
                "utility_id": STRING,
                "profile": obj(
                    {
                        "meters": INTEGER,
                        "modem_lines": INTEGER,
                        "c_and_i_customers": INTEGER,
                        "meters_by_network": {"type": "object", "additionalProperties": INTEGER},
                        "read_success": MAYBE_NUMBER,
                        "segment": STRING,
                    }
                ),
            }
        ),
        "NetworkMixRequest": network_request,
        "NetworkMix": network_mix,
        "FleetNetworkMix": {
            "allOf": [
                network_mix,
                obj({"utility_id": STRING, "utility_name": STRING}),
            ]
        },
        "RoiScenario": scenario,
        "RoiScenarioList": obj({"scenarios": array(ref("RoiScenario"))}),
        "RoiScenarioVersion": obj(version_props),
        "RoiScenarioDetail": {
            "allOf": [ref("RoiScenario"), obj({"versions": array(ref("RoiScenarioVersion"))})]
        },
        "RoiStoredVersion": obj(
            {
                "scenario": ref("RoiScenario"),
                "document": ref("RoiInputDocument"),
                **version_props,
            }
        ),
        "RoiScenarioCreate": obj(
            {
                "name": name_field,
                "customer_name": name_field,
                "note": note_field,
                "utility_id": {"type": "string", "minLength": 1, "maxLength": 64},
                "document": ref("RoiInputRequest"),
            },
            ("name", "customer_name", "document"),
        )
        | {
            "example": {
                "name": "Pilot, 800 endpoints",
                "customer_name": "Great Lakes Power",
                "utility_id": "glpl",
                "document": {"segment": "iou"},
            }
        },
        "RoiVersionCreate": obj(
            {"document": ref("RoiInputRequest"), "note": note_field}, ("document",)
        )
        | {"example": {"document": {"segment": "iou", "horizon_years": 15}, "note": "15 years"}},
        **_channel_export_command_schemas(),
    }


def _components() -> JsonObject:
    responses = {
        f"Error{code}": {"description": text, "content": json_body(ref("Error"))}
        for code, text in (
            (400, "Bad request: a parameter or body field is wrong (the message names it)"),
            (
                401,
                "Not logged in, or the bearer token is missing, forged, expired or revoked",
            ),
            (403, "Your role may not do this"),
            (404, "Not found, or not in your tenant's scope"),
            (409, "Conflicts with the resource's current state"),
            (413, "The request body is over the 2 MiB limit"),
            (422, "Understood but refused by a business rule"),
            (
                429,
                "Too many failed logins for this e-mail or from this address (10 an account, "
                "50 an address, in 15 minutes); the Retry-After header says when to try again",
            ),
            (503, "A backing service (the MQTT broker) is unavailable"),
        )
    }
    return {
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "A token from POST /api/v1/auth/token, valid for 24 hours",
            },
            "cookieAuth": {
                "type": "apiKey",
                "in": "cookie",
                "name": "session",
                "description": "The portal's login session; writes also need an X-CSRFToken "
                "header with the page's CSRF token (400 without it)",
            },
        },
        "headers": {
            "ContentDisposition": {
                "description": "attachment; filename=...",
                "schema": {"type": "string"},
            }
        },
        "responses": responses,
        "schemas": _schemas(),
    }


# --- Paths on this branch ---------------------------------------------------------------------


def _paths() -> JsonObject:
    roi_errors = errors(400, 403)
    return {
        "/health": {
            "get": operation(
                "health",
                "Liveness and counts (no login, no tenant data)",
                "system",
                {
                    "200": ok(
                        "Liveness; status is degraded when the broker is gone. On PostgreSQL "
                        "`readings` comes from the planner's statistics (`readings_exact` "
                        "false) once the partitions are analysed, and `dead_letters` past "
                        f"{queries.DEAD_LETTERS_COUNTED:,} (`dead_letters_exact` false): no "
                        "full count per probe",
                        ref("Health"),
                    )
                },
                public=True,
            )
        },
        "/openapi.json": {
            "get": operation(
                "openapi",
                "This document",
                "system",
                {"200": ok("The OpenAPI 3.1 document", {"type": "object"})},
                public=True,
            )
        },
        "/auth/token": {
            "post": operation(
                "issueToken",
                "Exchange e-mail and password for a bearer token",
                "auth",
                {"200": ok("A bearer token", ref("Token")), **errors(400, 401, 429)},
                body=ref("TokenRequest"),
                public=True,
                description="401 when the e-mail is unknown or the password wrong; 429 after "
                "too many failures, without checking the password.",
            ),
            "delete": operation(
                "revokeToken",
                "Revoke the bearer token sent with this request",
                "auth",
                {"204": {"description": "Revoked: the token answers 401 from now on"}},
                description="Only a bearer token can be revoked here; a browser session "
                "ends with the portal's Log out.",
            ),
        },
        "/meters": {
            "get": operation(
                "listMeters",
                "List the caller's meters, paged",
                "meters",
                {"200": ok("A page of meters", ref("MeterList")), **errors(400)},
                parameters=[
                    query("utility", STRING, "Only this utility's meters"),
                    query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                        "Page size",
                    ),
                    query(
                        "offset",
                        {"type": "integer", "minimum": 0, "maximum": 10_000_000, "default": 0},
                        "Meters to skip",
                    ),
                ],
            )
        },
        "/meters/{meter_id}": {
            "get": operation(
                "getMeter",
                "One meter (another tenant's meter answers 404)",
                "meters",
                {"200": ok("The meter", ref("Meter")), **errors(404)},
                parameters=[METER_ID],
            )
        },
        "/meters/{meter_id}/readings": {
            "get": operation(
                "getReadings",
                "A meter's 15-minute intervals in [start, end); default: the newest 192",
                "meters",
                {"200": ok("Intervals, oldest first", ref("Readings")), **errors(400, 404)},
                parameters=[METER_ID, START, END],
                description="Give both start and end, or neither.",
            )
        },
        "/fleet/summary": {
            "get": operation(
                "fleetSummary",
                "Per-utility meter counts, online/offline and readings in the last hour",
                "fleet",
                {"200": ok("One row per visible utility", ref("FleetSummary"))},
            )
        },
        "/alarms": {
            "get": operation(
                "listAlarms",
                "Visible alarms (outage, tamper, low power factor, comms loss)",
                "alarms",
                {"200": ok("Alarms, newest first", ref("AlarmList")), **errors(400)},
                parameters=[
                    query(
                        "state",
                        {
                            "type": "string",
                            "enum": ["open", "acknowledged", "all"],
                            "default": "open",
                        },
                        "Which alarms",
                    )
                ],
            )
        },
        "/alarms/{key}/acknowledge": {
            "post": operation(
                "acknowledgeAlarm",
                "Acknowledge an alarm, with an optional note (audited)",
                "alarms",
                {"200": ok("The acknowledged alarm", ref("Alarm")), **errors(400, 403, 404)},
                parameters=[path_param("key", STRING, "Alarm key", "event:1")],
                body=ref("AcknowledgeRequest"),
                body_required=False,
                description="Distributor reps may view but not acknowledge (403).",
            )
        },
        "/roi": {
            "post": operation(
                "evaluateRoi",
                "Evaluate an input document: headline figures, cash flows, tornado, cases, "
                "Monte Carlo",
                "roi",
                {"200": ok("The evaluation", ref("RoiEvaluation")), **roi_errors},
                body=ref("RoiReportRequest"),
                description=ROLES_NOTE,
            )
        },
        "/roi/defaults": {
            "get": operation(
                "roiDefaults",
                "The complete default input document of a segment",
                "roi",
                {"200": ok("Input document", ref("RoiInputDocument")), **roi_errors},
                parameters=[query("segment", SEGMENT, "Segment", required=True)],
                description=ROLES_NOTE,
            )
        },
        "/roi/calibrate": {
            "get": operation(
                "roiCalibrate",
                "An input document prefilled from a visible utility's fleet",
                "roi",
                {
                    "200": ok("Calibrated document", ref("RoiCalibration")),
                    **roi_errors,
                    **errors(404),
                },
                parameters=[UTILITY],
                description=ROLES_NOTE,
            )
        },
        "/roi/network-mix": {
            "get": operation(
                "roiFleetNetworkMix",
                "Cheapest network per metered site of a visible utility",
                "roi",
                {
                    "200": ok("The network choice", ref("FleetNetworkMix")),
                    **roi_errors,
                    **errors(404),
                },
                parameters=[UTILITY],
                description=ROLES_NOTE + " 404 also when the utility has no metered sites.",
            ),
            "post": operation(
                "roiNetworkMix",
                "Cheapest network (public cellular or private) per site given",
                "roi",
                {"200": ok("The network choice", ref("NetworkMix")), **roi_errors},
                body=ref("NetworkMixRequest"),
                description=ROLES_NOTE,
            ),
        },
        "/roi/report": {
            "post": operation(
                "roiReport",
                "PDF, workbook or CSV of an input document",
                "roi",
                {"200": download("The report", REPORT_TYPES), **roi_errors, **errors(404)},
                parameters=[FORMAT],
                body=ref("RoiReportRequest"),
                description=ROLES_NOTE + " 404 when utility_id names a utility out of scope.",
            )
        },
        "/roi/scenarios": {
            "get": operation(
                "listScenarios",
                "The tenant's saved ROI scenarios",
                "roi",
                {"200": ok("Scenarios", ref("RoiScenarioList")), **errors(403)},
                description=ROLES_NOTE,
            ),
            "post": operation(
                "createScenario",
                "Save a new scenario (version 1) from an input document",
                "roi",
                {"201": ok("The new scenario", ref("RoiScenario")), **roi_errors, **errors(404)},
                body=ref("RoiScenarioCreate"),
                description=ROLES_NOTE,
            ),
        },
        "/roi/scenarios/{scenario_id}": {
            "get": operation(
                "getScenario",
                "A scenario with its version history (who changed what, when)",
                "roi",
                {"200": ok("The scenario", ref("RoiScenarioDetail")), **errors(403, 404)},
                parameters=[SCENARIO_ID],
                description=ROLES_NOTE,
            )
        },
        "/roi/scenarios/{scenario_id}/versions": {
            "post": operation(
                "addScenarioVersion",
                "Save an edited document as the scenario's next version",
                "roi",
                {
                    "201": ok("The new version", ref("RoiScenarioVersion")),
                    **roi_errors,
                    **errors(404),
                },
                parameters=[SCENARIO_ID],
                body=ref("RoiVersionCreate"),
                description=ROLES_NOTE + " The segment cannot change.",
            )
        },
        "/roi/scenarios/{scenario_id}/versions/{version}": {
            "get": operation(
                "getScenarioVersion",
                "One stored version: its full input document and metadata",
                "roi",
                {"200": ok("The version", ref("RoiStoredVersion")), **errors(403, 404)},
                parameters=[SCENARIO_ID, VERSION],
                description=ROLES_NOTE,
            )
        },
        "/roi/scenarios/{scenario_id}/versions/{version}/report": {
            "get": operation(
                "getScenarioVersionReport",
                "Rebuild a stored version's report exactly (same document, date and parties)",
                "roi",
                {
                    "200": download("The report", REPORT_TYPES),
                    **roi_errors,
                    **errors(404, 409),
                },
                parameters=[SCENARIO_ID, VERSION, FORMAT],
                description=ROLES_NOTE + " 409 when the version was made by another model "
                "version and cannot be reproduced exactly.",
            )
        },
    }


# --- The channel, the exports and the commands: their schemas and paths -------------------------


def _channel_export_command_schemas() -> JsonObject:
    status = {
        "type": "string",
        "enum": ["submitted", "approved", "roi_requested", "proposal", "won", "lost", "rejected"],
    }
    deal_size = {
        "endpoints": {"type": "integer", "minimum": 0, "maximum": 1_000_000},
        "term_months": {"type": "integer", "minimum": 1, "maximum": 120},
        "note": {"type": "string", "maxLength": 4000},
    }
    return {
        "Command": obj(
            {
                "id": STRING,
                "meter_id": STRING,
                "command": STRING,
                "args": {"type": "object"},
                "status": {
                    "type": "string",
                    "enum": ["pending", "accepted", "ok", "error", "timeout"],
                },
                "result": nullable({"type": "object"}),
                "requested_at": TIME,
                "replied_at": MAYBE_TIME,
                "url": {"type": "string", "description": "Where to follow the command"},
            }
        ),
        "CommandFailed": {
            "allOf": [ref("Command"), obj({"message": STRING})],
        },
        "CommandList": obj({"commands": array(ref("Command"))}),
        "CommandRequest": obj(
            {
                "command": {
                    "type": "string",
                    "enum": [
                        "ping",
                        "read",
                        "time_sync",
                        "demand_reset",
                        "set_schedule",
                        "disconnect",
                        "connect",
                    ],
                },
                "args": {
                    "type": "object",
                    "description": "read: {what: registers|intervals, start, end}; "
                    "time_sync: {time?}; set_schedule: {schedule: live|hourly|daily}; "
                    "the others take none",
                },
            },
            ("command",),
        ),
        "Rollups": obj(
            {
                "meter_id": STRING,
                "period": {"type": "string", "enum": ["hourly", "daily"]},
                "rollups": array(
                    obj(
                        {
                            "start": TIME,
                            "kwh": NUMBER,
                            "kvarh": NUMBER,
                            "peak_kw": NUMBER,
                            "peak_at": TIME,
                            "power_factor": MAYBE_NUMBER,
                            "intervals": INTEGER,
                            "quality": obj(
                                {
                                    "valid": INTEGER,
                                    "estimated": INTEGER,
                                    "questionable": INTEGER,
                                    "edited": INTEGER,
                                }
                            ),
                        }
                    )
                ),
            }
        ),
        "AuditTrail": obj(
            {
                "meter_id": STRING,
                "changes": array(
                    obj(
                        {
                            "start": TIME,
                            "changed_at": TIME,
                            "source": STRING,
                            "old": obj(
                                {
                                    "kwh": MAYBE_NUMBER,
                                    "kvarh": MAYBE_NUMBER,
                                    "demand_kw": MAYBE_NUMBER,
                                    "quality": MAYBE_STRING,
                                }
                            ),
                            # kvarh is null on changes recorded before it was kept; all
                            # are null when VEE withdrew an estimate it could no longer make.
                            "new": obj(
                                {
                                    "kwh": MAYBE_NUMBER,
                                    "kvarh": MAYBE_NUMBER,
                                    "demand_kw": MAYBE_NUMBER,
                                    "quality": MAYBE_STRING,
                                }
                            ),
                        }
                    )
                ),
            }
        ),
        "Deal": obj(
            {
                "id": INTEGER,
                "status": status,
                "partner": STRING,
                "conflict": BOOLEAN,
                "protected": BOOLEAN,
                "utility": STRING,
                "segment": SEGMENT,
                "region": STRING,
                "prospect": MAYBE_STRING,
                "endpoints": INTEGER,
                "term_months": INTEGER,
                "rep_id": nullable(INTEGER),
                "note": STRING,
                "created_at": TIME,
                "updated_at": TIME,
                "first_response_at": MAYBE_TIME,
                "approved_at": MAYBE_TIME,
                "roi_requested_at": MAYBE_TIME,
                "roi_delivered_at": MAYBE_TIME,
                "proposal_at": MAYBE_TIME,
                "closed_at": MAYBE_TIME,
                "value": obj(
                    {
                        "tier": STRING,
                        "customer_total": NUMBER,
                        "distributor_margin": NUMBER,
                        "vendor_net": NUMBER,
                    }
                ),
                "roi": nullable({"type": "object"}),
                "roi_questionnaire": BOOLEAN,
                "next": array(status),
                "conflict_with": {
                    **array(INTEGER),
                    "description": "Vendor staff only: the other registrations",
                },
                "protected_by": {**nullable(INTEGER), "description": "Vendor staff only"},
            },
            (
                "id",
                "status",
                "partner",
                "conflict",
                "protected",
                "utility",
                "segment",
                "region",
                "endpoints",
                "term_months",
                "note",
                "created_at",
                "updated_at",
                "value",
                "roi",
                "roi_questionnaire",
                "next",
            ),
        ),
        "DealList": obj({"deals": array(ref("Deal"))}),
        "DealRegistration": obj(
            {
                "utility": {"type": "string", "minLength": 1, "maxLength": 120},
                "segment": SEGMENT,
                "region": {"type": "string", "description": "e.g. US-MI"},
                "partner": {"type": "string", "description": "Vendor staff: the distributor"},
                "prospect": STRING,
                **deal_size,
            },
            ("utility", "segment"),
            closed=True,
        )
        | {
            "example": {
                "utility": "Lakeshore Electric Cooperative",
                "segment": "service_bureau",
                "region": "US-MI",
                "partner": "northgrid",
                "endpoints": 400,
            }
        },
        "DealPatch": obj(
            {
                "status": status,
                "roi_inputs": ref("RoiInputRequest"),
                "evaluate_roi": BOOLEAN,
                "partner": STRING,
                **deal_size,
            },
            (),
            closed=True,
        ),
    }


def _channel_export_command_paths() -> JsonObject:
    deal_id = path_param("deal_id", ID, "Deal id", 1)
    tz = query("tz", STRING, "IANA time zone for local days (default: the meter's)")
    day_or_time = f"{TIME_NOTE}, or a date YYYY-MM-DD (midnight UTC)"
    start = query("start", STRING, f"Range start (inclusive), {day_or_time}", example="2026-03-02")
    end = query("end", STRING, f"Range end (exclusive), {day_or_time}", example="2026-03-03")
    channel = "For vendor and distributor staff; utility viewers and building managers get 403."
    return {
        # mdm: readings gain format=csv and tz (replaces this branch's operation on merge).
        "/meters/{meter_id}/readings": {
            "get": operation(
                "getReadings",
                "A meter's 15-minute intervals in [start, end) as JSON or CSV; "
                "default: the newest 192",
                "meters",
                {
                    "200": {
                        "description": "Intervals, oldest first",
                        "content": {
                            "application/json": {"schema": ref("Readings")},
                            "text/csv": {"schema": STRING},
                        },
                    },
                    **errors(400, 404),
                },
                parameters=[
                    METER_ID,
                    start,
                    end,
                    query(
                        "format",
                        {"type": "string", "enum": ["json", "csv"], "default": "json"},
                        "Response format",
                    ),
                    tz,
                ],
                description="Give both start and end, or neither; at most 31 days.",
            )
        },
        "/meters/{meter_id}/greenbutton": {
            "get": operation(
                "getGreenButton",
                "A meter's intervals as a Green Button (ESPI Atom) feed",
                "meters",
                {"200": download("The feed", ("application/atom+xml",)), **errors(400, 404)},
                parameters=[METER_ID, start, end, tz],
                description="Default: the last 7 whole local days up to the newest interval.",
            )
        },
        "/meters/{meter_id}/rollups": {
            "get": operation(
                "getRollups",
                "Hourly (UTC hours) or daily (local days) rollups over [start, end)",
                "meters",
                {"200": ok("Rollups", ref("Rollups")), **errors(400, 404)},
                parameters=[
                    METER_ID,
                    {**start, "required": True},
                    {**end, "required": True},
                    query(
                        "period",
                        {"type": "string", "enum": ["hourly", "daily"], "default": "daily"},
                        "Bucket size (hourly: at most 31 days; daily: at most 366)",
                    ),
                ],
            )
        },
        "/meters/{meter_id}/audit": {
            "get": operation(
                "getAudit",
                "Audited changes of a meter's stored values (an actual over an estimate, "
                "a VEE flag or estimate, an edit, an import), newest first",
                "meters",
                {"200": ok("Changes", ref("AuditTrail")), **errors(400, 404)},
                parameters=[
                    METER_ID,
                    {**start, "description": "Changes of intervals from this start (with end)"},
                    {**end, "description": "Changes of intervals before this start (with start)"},
                    query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                        "At most this many changes",
                    ),
                ],
            )
        },
        # commands: two-way commands over MQTT.
        "/meters/{meter_id}/commands": {
            "get": operation(
                "listCommands",
                "A meter's most recent commands, newest first",
                "commands",
                {"200": ok("Up to 20 commands", ref("CommandList")), **errors(404)},
                parameters=[METER_ID],
            ),
            "post": operation(
                "sendCommand",
                'Send {"command", "args"} to a meter; 202 with the id and URL to follow',
                "commands",
                {
                    "202": ok("Sent; follow it at url", ref("Command")),
                    "503": {
                        "description": "The broker refused the command; it is stored as error",
                        "content": json_body(ref("CommandFailed")),
                    },
                    **errors(400, 403, 404),
                },
                parameters=[METER_ID],
                body=ref("CommandRequest"),
                description="403 when the role may not send that command (relay: vendor "
                "admins and sales engineers and utility viewers only; time sync, demand reset "
                "and schedule: everyone but distributor reps).",
            ),
        },
        "/commands/{command_id}": {
            "get": operation(
                "getCommand",
                "A command's status (pending, accepted, ok, error or timeout) and result",
                "commands",
                {"200": ok("The command", ref("Command")), **errors(404)},
                parameters=[path_param("command_id", STRING, "Command id", "0" * 32)],
            )
        },
        # partners: the deals API.
        "/deals": {
            "get": operation(
                "listDeals",
                "The deals the caller may see",
                "deals",
                {"200": ok("Deals", ref("DealList")), **errors(403)},
                description=channel,
            ),
            "post": operation(
                "registerDeal",
                "Register a deal (territory and conflicts checked)",
                "deals",
                {
                    "201": {
                        "description": "The registered deal",
                        "headers": {
                            "Location": {"description": "The deal's URL", "schema": STRING}
                        },
                        "content": json_body(ref("Deal")),
                    },
                    **errors(400, 403, 404, 409, 422),
                },
                body=ref("DealRegistration"),
                description=channel
                + " 404: an unknown prospect; 409: the partner's own registration of this utility"
                " is still open; 422: outside the territory.",
            ),
        },
        "/deals/{deal_id}": {
            "get": operation(
                "getDeal",
                "One deal (another tenant's answers 404)",
                "deals",
                {"200": ok("The deal", ref("Deal")), **errors(403, 404)},
                parameters=[deal_id],
                description=channel,
            ),
            "patch": operation(
                "patchDeal",
                "Change status, note, size, ROI questionnaire or evaluate the ROI",
                "deals",
                {"200": ok("The deal", ref("Deal")), **errors(400, 403, 404, 409)},
                parameters=[deal_id],
                body=ref("DealPatch"),
                description=channel + " 409: the move is not allowed from the current state.",
            ),
        },
    }


# --- The document ------------------------------------------------------------------------------


def build_document() -> JsonObject:
    """Return the OpenAPI 3.1 document of /api/v1."""
    paths = _paths()
    for path, operations in _channel_export_command_paths().items():
        paths[path] = {**paths.get(path, {}), **operations}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Wattline API",
            "version": "1",
            "description": "Versioned REST API of the Wattline portal. Every call is scoped "
            "to the caller's tenant: another tenant's object answers 404. Errors are JSON "
            '{"error", "message", "status"} (plus "field" where a request field is at fault). '
            "Text anywhere in a request (path, query, JSON body) must not contain NUL "
            "characters (400).",
        },
        "servers": [{"url": API_PREFIX}],
        "security": [{"bearerAuth": []}, {"cookieAuth": []}],
        "paths": dict(sorted(paths.items())),
        "components": _components(),
    }
