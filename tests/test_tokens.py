"""API tokens: created with a label and a lifetime, listed without secrets, revoked at once; an
expired or revoked token is refused naming why; tokens stored before ids existed keep working."""
from __future__ import annotations

from datetime import datetime, timezone

from click.testing import CliRunner

from fsm.store.tokens import token_hash
from suanwang.cli import main
from tests.apiserver import api, wait_for  # noqa: F401  (fixture)


def _whoami(api, token):  # noqa: F811
    return api.call("GET", "/users/u-business", token=token)


def test_a_token_is_shown_once_listed_without_secret_and_works(api):  # noqa: F811
    # When the business user creates a token for themself
    resp = api.call("POST", "/users/u-business/tokens", "business", json={"label": "laptop", "expires_in_s": 3600})
    assert resp.status_code == 201, resp.text
    made = resp.json()
    assert set(made) >= {"id", "label", "created_at", "expires_at", "token"} and made["label"] == "laptop"
    created = datetime.fromisoformat(made["created_at"])
    assert (datetime.fromisoformat(made["expires_at"]) - created).total_seconds() == 3600
    # Then the secret works, and the listing shows the token without any secret
    assert _whoami(api, made["token"]).json()["name"] == "u-business"
    listing = api.call("GET", "/users/u-business/tokens", "business").json()
    mine = [t for t in listing["items"] if t["id"] == made["id"]]
    assert len(mine) == 1 and mine[0]["revoked"] is False and mine[0]["last_used_at"] is not None
    assert made["token"] not in str(listing) and "hash" not in str(listing)
    # ... and the database keeps only its hash
    stored = api.store.db.users.find_one({"_id": "u-business"})["tokens"]
    assert token_hash(made["token"]) in [t["hash"] for t in stored] and made["token"] not in str(stored)


def test_a_revoked_token_is_refused_at_once_naming_why(api):  # noqa: F811
    made = api.call("POST", "/users/u-business/tokens", "business", json={"label": "ci"}).json()
    assert made["expires_at"] is None  # no lifetime: never expires
    assert _whoami(api, made["token"]).status_code == 200
    # When an admin revokes it
    resp = api.call("DELETE", f"/users/u-business/tokens/{made['id']}", "admin")
    assert resp.status_code == 200 and resp.json()["revoked"] is True and resp.json()["revoked_by"] == "admin"
    # Then the very next call with it is 401 token_revoked, saying by whom
    refused = _whoami(api, made["token"])
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "token_revoked"
    assert f"token {made['id']} was revoked at" in refused.json()["error"]["message"]
    assert "by admin" in refused.json()["error"]["message"]
    # ... the user's other tokens still work; the trail names both actions
    assert _whoami(api, api.tokens["business"]).status_code == 200
    actions = [(e["action"], e["actor"], e["details"]["token_id"]) for e in
               api.call("GET", "/audit?target=u-business", "admin").json()["items"]]
    assert actions == [("token.revoke", "admin", made["id"]), ("token.create", "u-business", made["id"])]


def test_an_expired_token_is_refused_saying_when_it_expired(api):  # noqa: F811
    made = api.call("POST", "/users/u-super/tokens", "super", json={"expires_in_s": 1}).json()
    # When its second has passed
    wait_for(lambda: api.call("GET", "/users/u-super", token=made["token"]).status_code == 401, timeout=10)
    refused = api.call("GET", "/users/u-super", token=made["token"]).json()["error"]
    # Then it is 401 token_expired with the time it expired
    expired_at = datetime.fromisoformat(made["expires_at"]).astimezone(timezone.utc)
    assert refused["code"] == "token_expired"
    assert f"expired at {expired_at:%Y-%m-%d %H:%M:%S} UTC" in refused["message"]


def test_who_may_manage_whose_tokens_and_bad_bodies(api):  # noqa: F811
    # A user may not touch another user's tokens; an admin may
    assert api.call("GET", "/users/u-super/tokens", "business").status_code == 403
    assert api.call("POST", "/users/u-super/tokens", "business", json={}).status_code == 403
    assert api.call("POST", "/users/u-super/tokens", "admin", json={"label": "for super"}).status_code == 201
    # Unknown users and tokens: 404; a malformed token id: 422
    assert api.call("GET", "/users/nobody/tokens", "admin").status_code == 404
    assert api.call("DELETE", "/users/u-super/tokens/0123456789abcdef", "admin").status_code == 404
    bad_id = api.call("DELETE", "/users/u-super/tokens/xyz", "admin")
    assert bad_id.status_code == 422 and bad_id.json()["error"]["field"] == "token_id"
    before = api.snapshot()
    for bad, field in (({"expires_in_s": 0}, "expires_in_s"), ({"expires_in_s": "1h"}, "expires_in_s"),
                       ({"expires_in_s": True}, "expires_in_s"), ({"label": 5}, "label"),
                       ({"label": "a\nb"}, "label"), ({"lifetime": 5}, "lifetime")):
        resp = api.call("POST", "/users/u-super/tokens", "super", json=bad)
        assert resp.status_code == 422 and resp.json()["error"]["field"] == field, (bad, resp.text)
    assert api.snapshot() == before


def test_tokens_stored_before_ids_keep_working_and_can_be_revoked(api):  # noqa: F811
    # Given a token entry as older servers wrote it: {hash, label, created_at}, no id, no expiry
    secret = "an-old-token-from-before-ids"
    api.store.db.users.update_one({"_id": "u-general"}, {"$push": {"tokens": {
        "hash": token_hash(secret), "label": "old", "created_at": datetime(2026, 1, 1, tzinfo=timezone.utc)}}})
    # Then it works, is listed with an id, and that id revokes it
    assert api.call("GET", "/users/u-general", token=secret).status_code == 200
    old = [t for t in api.call("GET", "/users/u-general/tokens", "general").json()["items"] if t["label"] == "old"]
    assert len(old) == 1 and old[0]["id"] == token_hash(secret)[:16] and old[0]["expires_at"] is None
    assert api.call("DELETE", f"/users/u-general/tokens/{old[0]['id']}", "general").status_code == 200
    assert api.call("GET", "/users/u-general", token=secret).json()["error"]["code"] == "token_revoked"


def test_token_cli_create_list_revoke(api):  # noqa: F811
    runner = CliRunner()
    common = ["--server-url", api.base, "--token", api.tokens["business"]]
    # create prints the secret once and the id
    made = runner.invoke(main, ["token", "create", "--label", "cli", "--expires-in", "600", *common])
    assert made.exit_code == 0, made.output
    secret = made.output.strip().splitlines()[-1]
    token_id = next(t["id"] for t in api.call("GET", "/users/u-business/tokens", "business").json()["items"]
                    if t["label"] == "cli")
    assert token_id in made.output and _whoami(api, secret).status_code == 200
    # list shows it (no secret); revoke ends it
    listed = runner.invoke(main, ["token", "list", *common])
    assert listed.exit_code == 0 and token_id in listed.output and "cli" in listed.output
    assert secret not in listed.output
    revoked = runner.invoke(main, ["token", "revoke", token_id, *common])
    assert revoked.exit_code == 0, revoked.output
    assert _whoami(api, secret).json()["error"]["code"] == "token_revoked"
    # an admin manages another user's tokens with --user; a business user may not
    admin = ["--server-url", api.base, "--token", api.tokens["admin"]]
    assert runner.invoke(main, ["token", "list", "--user", "u-business", *admin]).exit_code == 0
    refused = runner.invoke(main, ["token", "list", "--user", "u-super", *common])
    assert refused.exit_code == 2 and "403" in refused.output
