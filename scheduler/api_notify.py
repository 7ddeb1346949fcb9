"""HTTP routes of notifications and resource statistics (mounted under /api/v1).

    GET    /subscriptions             the caller's subscriptions (admin ?all=1: everyone's)
    POST   /subscriptions             subscribe; a webhook's secret (a gateway's headers) shown in this answer only 201
    DELETE /subscriptions/<id>        unsubscribe (its owner or an admin)
    GET    /deliveries                deliveries of the caller's subscriptions (?status=, ?subscription_id=)
    GET    /stats/resources           per worker and per function: runs, success rate, mean and p95
                                      duration; the service map (?window_s=, ?recent_s=)

See ``scheduler.notify`` for the events and the body of a subscription.
"""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from fsm.errors import ValidationError
from scheduler import notify, resources
from scheduler.api import body
from scheduler.auth import current_user, store
from scheduler.query_args import query_params

bp = Blueprint("notify", __name__)

#: Summaries for the OpenAPI document (``scheduler.openapi.SUMMARIES``).
SUMMARIES = {
    ("get", "/subscriptions"): "Your event subscriptions (admin ?all=1: everyone's)",
    ("post", "/subscriptions"): "Subscribe to task, worker or queue events by e-mail, signed webhook, SMS or "
                                "WeChat Work robot",
    ("delete", "/subscriptions/{subscription_id}"): "Unsubscribe",
    ("get", "/deliveries"): "Deliveries of your subscriptions: pending, sent or failed, with errors",
    ("get", "/stats/resources"): "Runs, success rate, mean and p95 duration per worker and function; service map",
}


@bp.get("/subscriptions")
@query_params("all", "event", "limit", "skip")
def list_subscriptions():
    page = notify.list_subscriptions(store(), current_user(), request.args.to_dict())
    page["items"] = [notify.subscription_view(d) for d in page["items"]]
    return jsonify(page)


@bp.post("/subscriptions")
def subscribe():
    user = current_user()
    doc = notify.subscribe(store(), body(), user)
    return jsonify(notify.subscription_view(doc, show_secret=True)), 201


@bp.delete("/subscriptions/<subscription_id>")
def unsubscribe(subscription_id):
    doc = notify.unsubscribe(store(), subscription_id, current_user())
    return jsonify({"id": doc["_id"], "deleted": True})


@bp.get("/deliveries")
@query_params("all", "status", "subscription_id", "event", "limit", "skip")
def list_deliveries():
    page = notify.list_deliveries(store(), current_user(), request.args.to_dict())
    page["items"] = [notify.delivery_view(d) for d in page["items"]]
    return jsonify(page)


def _seconds(name: str, default: float) -> float:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValidationError(f"'{name}' must be a number of seconds", field=name) from None
    if not 0 <= value <= 366 * 86400:
        raise ValidationError(f"'{name}' must be from 0 to {366 * 86400} seconds", field=name)
    return value


@bp.get("/stats/resources")
@query_params("window_s", "recent_s")
def resource_stats():
    current_user()
    return jsonify(resources.resource_stats(store(), window_s=_seconds("window_s", resources.DEFAULT_WINDOW_S),
                                            recent_s=_seconds("recent_s", resources.DEFAULT_RECENT_S)))
