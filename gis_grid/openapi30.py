"""An OpenAPI 3.1 document (what FastAPI generates) rewritten as OpenAPI 3.0.3.

OGC API - Features Part 1 has a conformance class for OpenAPI 3.0 only (``oas30``), and GIS
clients (GDAL's OAPIF driver, OWSLib) ask for ``application/vnd.oai.openapi+json;version=3.0``.
3.1 schemas are JSON Schema 2020-12; 3.0 schemas are an older dialect, so the few 3.1-only
keywords are rewritten where they appear inside a schema:

* ``{"anyOf": [X, {"type": "null"}]}`` and ``"type": [T, "null"]`` -> X or T with ``nullable: true``
* ``const`` -> a one-value ``enum``; ``examples`` (a list) -> ``example``
* numeric ``exclusiveMinimum``/``exclusiveMaximum`` -> ``minimum``/``maximum`` plus the boolean
* ``$ref`` with sibling keywords -> ``allOf: [$ref]`` plus the siblings (3.0 ignores siblings)
* keywords 3.0 does not know (``contentMediaType``, ``prefixItems``, ``$schema``...) are dropped

The input is not changed. Framework-free: ``api/routers/ogc.py`` serves the result.
"""
from __future__ import annotations

import copy

__all__ = ["to_openapi30", "add_query_parameters"]

VERSION = "3.0.3"
# JSON Schema keywords an OpenAPI 3.0 schema object may hold (3.0.3, 4.7.24)
_SCHEMA_KEYS = {
    "title", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength",
    "minLength", "pattern", "maxItems", "minItems", "uniqueItems", "maxProperties", "minProperties",
    "required", "enum", "type", "allOf", "oneOf", "anyOf", "not", "items", "properties",
    "additionalProperties", "description", "format", "default", "nullable", "discriminator", "readOnly",
    "writeOnly", "xml", "externalDocs", "example", "deprecated", "$ref",
}


def _schema(s):
    """One schema object in 3.0 form."""
    if not isinstance(s, dict):
        return s
    s = dict(s)
    if "const" in s:
        s.setdefault("enum", [s.pop("const")])
        s.pop("const", None)
    if isinstance(s.get("examples"), list):
        ex = s.pop("examples")
        if ex:
            s.setdefault("example", ex[0])
    for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(s.get(bound), (int, float)) and not isinstance(s.get(bound), bool):
            s[flag] = s.pop(bound)
            s[bound] = True
    t = s.get("type")
    if isinstance(t, list):
        rest = [x for x in t if x != "null"]
        if len(rest) < len(t):
            s["nullable"] = True
        if len(rest) == 1:
            s["type"] = rest[0]
        elif not rest:
            s.pop("type")
        else:  # several types: 3.0 has no type list
            s.pop("type")
            s["anyOf"] = [{"type": x} for x in rest]
    elif t == "null":
        s.pop("type")
        s["nullable"] = True
    for key in ("anyOf", "oneOf"):
        alts = s.get(key)
        if isinstance(alts, list):
            real = [a for a in alts if a != {"type": "null"}]
            if len(real) < len(alts):
                s["nullable"] = True
            if len(real) == 1 and not ({"anyOf", "oneOf"} - {key}) & set(s):
                s.pop(key)
                only = _schema(real[0])
                if "$ref" in only:
                    s.setdefault("allOf", []).append(only)
                else:
                    for k, v in only.items():
                        s.setdefault(k, v)
            elif not real:
                s.pop(key)
            else:
                s[key] = real
    for key in ("allOf", "anyOf", "oneOf"):
        if key in s:
            s[key] = [_schema(a) for a in s[key]]
    for key in ("items", "not"):
        if isinstance(s.get(key), dict):
            s[key] = _schema(s[key])
    if isinstance(s.get("additionalProperties"), dict):
        s["additionalProperties"] = _schema(s["additionalProperties"])
    if isinstance(s.get("properties"), dict):
        s["properties"] = {k: _schema(v) for k, v in s["properties"].items()}
    if s.get("type") == "array" and "items" not in s:
        s["items"] = {}
    s = {k: v for k, v in s.items() if k in _SCHEMA_KEYS or k.startswith("x-")}
    if "$ref" in s and len(s) > 1:  # 3.0 ignores the siblings of a $ref: keep them with allOf
        ref = s.pop("$ref")
        s["allOf"] = [{"$ref": ref}, *s.get("allOf", [])]
    return s


def _content(content: dict) -> dict:
    out = {}
    for media, obj in content.items():
        obj = dict(obj)
        if "schema" in obj:
            obj["schema"] = _schema(obj["schema"])
        out[media] = obj
    return out


def _parameter(p: dict) -> dict:
    p = dict(p)
    if "schema" in p:
        p["schema"] = _schema(p["schema"])
    if "content" in p:
        p["content"] = _content(p["content"])
    return p


def _operation(op: dict) -> dict:
    op = dict(op)
    if "parameters" in op:
        op["parameters"] = [_parameter(p) for p in op["parameters"]]
    if "requestBody" in op and "content" in op["requestBody"]:
        op["requestBody"] = {**op["requestBody"], "content": _content(op["requestBody"]["content"])}
    responses = {}
    for code, r in op.get("responses", {}).items():
        r = dict(r)
        if "content" in r:
            r["content"] = _content(r["content"])
        if "headers" in r:
            r["headers"] = {k: _parameter(h) for k, h in r["headers"].items()}
        responses[code] = r
    if responses:
        op["responses"] = responses
    return op


def to_openapi30(doc: dict, *, prefix: str = "", server: str | None = None) -> dict:
    """The 3.1 document ``doc`` as OpenAPI 3.0.3.

    With ``prefix`` only the paths under it are kept, written relative to it, and ``server``
    (the URL the prefix is served at) becomes the one server: the definition of one API of a
    larger service, such as the OGC API under ``/ogc``.
    """
    out = copy.deepcopy(doc)
    if prefix:
        out["paths"] = {(p[len(prefix):] or "/"): item for p, item in out.get("paths", {}).items()
                        if p == prefix or p.startswith(prefix + "/")}
    if server is not None:
        out["servers"] = [{"url": server}]
    out["openapi"] = VERSION
    for key in ("webhooks", "jsonSchemaDialect"):
        out.pop(key, None)
    info = out.get("info", {})
    info.pop("summary", None)
    if isinstance(info.get("license"), dict):
        info["license"].pop("identifier", None)
    paths = {}
    for path, item in out.get("paths", {}).items():
        paths[path] = {m: (_operation(op) if isinstance(op, dict) and m != "parameters" else
                           [_parameter(p) for p in op] if m == "parameters" else op)
                       for m, op in item.items()}
    out["paths"] = paths
    comps = out.get("components", {})
    if "schemas" in comps:
        comps["schemas"] = {k: _schema(v) for k, v in comps["schemas"].items()}
    for key in ("parameters", "headers"):
        if key in comps:
            comps[key] = {k: _parameter(v) for k, v in comps[key].items()}
    return out


def add_query_parameters(doc: dict, template: str, concrete: dict[str, dict[str, dict]]) -> dict:
    """Copy the operation at path ``template`` to one concrete path per entry of ``concrete``
    (``{path: {parameter name: schema}}``), declaring those query parameters there too.

    OGC API clients (GDAL's OAPIF driver) find the properties a server filters on by reading the
    query parameters of ``/collections/{id}/items`` in the API definition, as pygeoapi lists them.
    """
    item = doc["paths"][template]["get"]
    for path, params in concrete.items():
        op = copy.deepcopy(item)
        op["operationId"] = f"{op.get('operationId', 'items')}_{path.strip('/').replace('/', '_')}"
        plist = [p for p in op.get("parameters", []) if p.get("in") != "path"]
        have = {p["name"] for p in plist}
        for name, schema in params.items():
            if name not in have:
                plist.append({"name": name, "in": "query", "required": False, "style": "form",
                              "explode": False, "schema": schema,
                              "description": f"features whose {name} equals this (comma-separated: any of)"})
        op["parameters"] = plist
        doc["paths"][path] = {"get": op}
    return doc
