"""The data API under /api/v1: raw bodies streamed into GridFS and back out, task results.

``POST /data?name=N`` reads ``request.stream`` piece by piece as the bytes arrive
(``scheduler.upload_stream``; this route's own size limit replaces the app's JSON limit), so
an object of any size passes through a bounded amount of memory. ``GET /data/<id>/content`` streams the bytes
with ``Range`` (206) and an ``ETag`` of the sha256. ``GET /tasks/<id>/result`` streams any
task's result: the stored file or JSON document, or the inline JSON value.
"""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from fsm.errors import ValidationError
from scheduler import service_data
from scheduler.auth import current_user, store
from scheduler.streaming import pieces_for

bp = Blueprint("data", __name__)
#: OpenAPI summaries of these routes (merged by ``scheduler.openapi``).
SUMMARIES = {
    ("post", "/data"): "Upload a data object: ?name=NAME, the raw bytes as the body (streamed into GridFS); "
                       "X-Content-SHA256 checked (422); 201 {id, name, size, sha256, owner, created_at}",
    ("get", "/data"): "Data objects the caller may see (limit, skip, owner, name)",
    ("get", "/data/{data_id}"): "One data object's metadata",
    ("get", "/data/{data_id}/content"): "A data object's bytes (Range: 206; ETag: its sha256)",
    ("delete", "/data/{data_id}"): "Delete a data object (its owner or an admin; 409 while a live task uses it)",
    ("get", "/tasks/{task_id}/result"): "A succeeded task's whole result: the stored file or JSON, or the inline value",
}
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


class UnsupportedMediaType(ValidationError):
    code, http_status = "unsupported_media_type", 415


class RangeNotSatisfiable(ValidationError):
    code, http_status = "range_not_satisfiable", 416


def limits() -> service_data.DataLimits:
    config = current_app.config["SUANWANG"]
    return service_data.DataLimits(max_bytes=getattr(config, "max_data_bytes", service_data.DataLimits.max_bytes),
                                   quota_bytes=getattr(config, "data_quota_bytes", None))


@bp.post("/data")
def upload():
    user = current_user()
    unknown = set(request.args) - {"name"}
    if unknown:
        raise ValidationError(f"unknown query parameter(s): {', '.join(sorted(unknown))} (allowed: name)")
    if request.mimetype in FORM_TYPES:
        raise UnsupportedMediaType("send the raw bytes as the body with 'Content-Type: application/octet-stream' "
                                   "(not a form)")
    if "name" not in request.args:
        raise ValidationError("the data needs a name: POST /api/v1/data?name=NAME", field="name")
    data_limits = limits()
    request.max_content_length = data_limits.max_bytes  # this route streams; JSON routes keep the app's limit
    meta = service_data.upload(store(), user, request.stream, name=request.args["name"],
                               length=request.content_length, sha256=request.headers.get("X-Content-SHA256"),
                               content_type=request.mimetype or None, limits=data_limits)
    return jsonify(meta), 201


@bp.get("/data")
def list_data():
    return jsonify(service_data.list_data(store(), current_user(), request.args.to_dict()))


@bp.get("/data/<data_id>")
def get_data(data_id):
    return jsonify(service_data.get_data(store(), data_id, current_user()))


@bp.delete("/data/<data_id>")
def delete_data(data_id):
    return jsonify({"deleted": service_data.delete_data(store(), data_id, current_user())})


@bp.get("/data/<data_id>/content")
def content(data_id):
    user = current_user()
    meta = service_data.get_data(store(), data_id, user)
    size, etag = meta["size"], meta["sha256"]
    if request.if_none_match.contains(etag):
        return Response(status=304, headers={"ETag": f'"{etag}"'})
    byte_range = None
    wanted = request.range
    if_range = request.headers.get("If-Range")
    if wanted is not None and len(wanted.ranges) == 1 and (if_range is None or if_range.strip('"') == etag):
        byte_range = wanted.range_for_length(size)
        if byte_range is None:
            response = jsonify({"error": {"code": RangeNotSatisfiable.code,
                                          "message": f"the range {request.headers['Range']} is outside the "
                                                     f"object's {size} bytes"}})
            response.status_code = 416
            response.headers["Content-Range"] = f"bytes */{size}"
            return response
    meta, pieces = service_data.open_content(store(), data_id, user, byte_range)
    return _stream(pieces, meta["content_type"], size, byte_range, etag, meta["name"])


def _stream(pieces, content_type: str, size: int, byte_range, etag: str | None, name: str | None) -> Response:
    start, stop = byte_range or (0, size)
    response = Response(pieces_for(request.environ, pieces), status=206 if byte_range else 200, mimetype=content_type, direct_passthrough=True)
    response.headers["Content-Length"] = str(stop - start)
    response.headers["Accept-Ranges"] = "bytes"
    if byte_range:
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    if etag:
        response.set_etag(etag)
    if name:
        response.headers.set("Content-Disposition", "attachment", filename=name)
    return response


@bp.get("/tasks/<task_id>/result")
def task_result(task_id):
    """The whole result of a succeeded task (409 before it has one)."""
    content_type, size, value = service_data.task_result(store(), task_id, current_user())
    if size is None:
        return jsonify(value)
    return _stream(value, content_type, size, None, None, None)
