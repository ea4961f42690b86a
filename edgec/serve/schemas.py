"""Pydantic models of the v2 messages, for the published OpenAPI schema (``/openapi.json``).

The infer endpoints read the body themselves (it may be a JSON header followed by binary tensors),
so their request schema is added to the document here rather than derived from a parameter."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from edgec.serve.protocol import DATATYPES, HEADER


class RequestInput(BaseModel):
    name: str
    shape: list[int]
    datatype: str = Field(description="one of " + ", ".join(DATATYPES))
    parameters: dict[str, Any] | None = Field(None, description="binary_data_size: the tensor's bytes in the "
                                              "binary part of the body")
    data: list[Any] | None = Field(None, description="row-major values (flat or nested); absent for binary inputs")


class RequestOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = Field(None, description="binary_data: true returns this output as binary")


class InferenceRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = Field(None, description="binary_data_output: true returns every "
                                              "output as binary")
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    outputs: list[ResponseOutput]


class ErrorBody(BaseModel):
    error: str
    expected: Any = None


def infer_body_doc() -> dict:
    ref = {"$ref": "#/components/schemas/InferenceRequest"}
    return {
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": ref},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary",
                                                    "description": f"binary tensor extension: the JSON "
                                                    f"InferenceRequest ({HEADER} bytes), then the tensors"}}}},
        "parameters": [{"name": HEADER, "in": "header", "required": False, "schema": {"type": "integer"},
                        "description": "length of the JSON header when binary tensors follow it"}],
        "responses": {"200": {"description": "the outputs (binary ones after the JSON header)", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/InferenceResponse"}}}},
            "400": {"description": "bad request", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}},
    }


def add_schemas(openapi: dict) -> dict:
    comps = openapi.setdefault("components", {}).setdefault("schemas", {})
    for model in (InferenceRequest, InferenceResponse, ErrorBody):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        comps.update(schema.pop("$defs", {}))
        comps[model.__name__] = schema
    return openapi
