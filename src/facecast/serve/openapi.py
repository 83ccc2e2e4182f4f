"""The OpenAPI document: FastAPI's own, plus the job spec's schema (``JobSpec``: the three kinds'
models, by ``kind``), which the multipart bodies reference (a JSON string field cannot be a
model parameter, so FastAPI does not see it by itself)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from .specs import JOB_SPEC

__all__ = ["install_openapi"]


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schema = JOB_SPEC.json_schema(ref_template="#/components/schemas/{model}")
            components = doc.setdefault("components", {}).setdefault("schemas", {})
            components.update(schema.pop("$defs", {}))
            components["JobSpec"] = schema
            doc.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "Needed when the server has a token file (any non-loopback bind)."}}
            doc["security"] = [{"bearer": []}, {}]
            _validation_errors(doc)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi


def _validation_errors(doc: dict) -> None:
    """FastAPI's own 422s (HTTPValidationError) carry an "error" line too here (app.py's handler):
    point them at InvalidOut, which says so."""
    for ops in doc.get("paths", {}).values():
        for op in ops.values():
            schema = op.get("responses", {}).get("422", {}).get("content", {}).get("application/json", {})
            if schema.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                schema["schema"] = {"$ref": "#/components/schemas/InvalidOut"}
    schemas = doc.get("components", {}).get("schemas", {})
    still = str(doc.get("paths", {}))
    for name in ("HTTPValidationError", "ValidationError"):
        if name in schemas and f"/{name}'" not in still:
            del schemas[name]
