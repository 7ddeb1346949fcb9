"""The services page: each service's deployed and previous version, partition, price and history,
with Deploy (a chosen version), Roll back and Undeploy buttons for super-users and admins.

Everything goes through ``scheduler.service_services`` (the API's own rights, partitions and
audit trail); every button is a CSRF-protected form whose outcome is flashed on the page.
"""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for

from fsm.errors import SuanwangError
from scheduler import service_services
from web import bp
from web.session import login_required, store, user


@bp.get("/services")
@login_required()
def services():
    """The services in partitions open to the viewer; super-users see the versions they may deploy."""
    s, me = store(), user()
    docs = [service_services.get_service(s, d["_id"], me) for d in service_services.list_services(s, me)]
    versions = {}
    for doc in docs:
        listed, _ = s.functions.list(doc["function"], include_deprecated=False)
        versions[doc["_id"]] = [v["version"] for v in listed] or [doc["deployed"]]
    return render_template("services.html", services=docs, versions=versions)


@bp.post("/actions/services/<name>/<verb>")
@login_required("manage_services")
def service_action(name, verb):
    """Deploy (form field ``version``), roll back or undeploy one service."""
    s, me = store(), user()
    try:
        if verb == "deploy":
            doc = service_services.deploy(s, name, {"version": request.form.get("version", "")}, me)
        elif verb == "rollback":
            doc = service_services.rollback(s, name, me)
        elif verb == "undeploy":
            doc = service_services.undeploy(s, name, me)
        else:
            raise SuanwangError(f"unknown action {verb!r}: deploy, rollback or undeploy")
    except SuanwangError as exc:
        flash(f"service {name}: {exc.message}", "danger")
    else:
        flash(f"service {name}: {verb} done; {doc['state']}, version {doc['deployed']}", "success")
    return redirect(url_for("web.services"))
