"""Web sessions live on the server: logout, a password change or an admin's revocation ends them,
so a copied cookie replayed by another HTTP client stops working at once; API tokens stay."""
from __future__ import annotations

import re

import requests

from tests.apiserver import api  # noqa: F401  (fixture)

PASSWORD = "a-long-password"


def _login(api, name: str, password: str = PASSWORD) -> requests.Session:  # noqa: F811
    browser = requests.Session()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', browser.get(f"{api.base}/login").text).group(1)
    resp = browser.post(f"{api.base}/login", data={"name": name, "password": password, "csrf_token": csrf},
                        allow_redirects=False)
    assert resp.status_code == 302, resp.text
    return browser


def _replay(api, cookies) -> requests.Session:  # noqa: F811
    """Another HTTP client holding a copy of the cookie."""
    thief = requests.Session()
    thief.cookies.update(cookies.get_dict())
    return thief


def _logged_in(api, client: requests.Session) -> bool:  # noqa: F811
    return client.get(f"{api.url}/whoami").status_code == 200


def test_a_copied_cookie_stops_working_after_logout(api):  # noqa: F811
    api.store.users.add("ann", "business", PASSWORD)
    browser = _login(api, "ann")
    thief = _replay(api, browser.cookies)
    # Given the copy works while the session is open
    assert _logged_in(api, thief) and thief.get(f"{api.base}/tasks", allow_redirects=False).status_code == 200
    # When the browser logs out
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', browser.get(f"{api.base}/tasks").text).group(1)
    assert browser.post(f"{api.base}/logout", data={"csrf_token": csrf}, allow_redirects=False).status_code == 302
    # Then the copied cookie is no login: 401 on the API, the login page for the pages
    assert thief.get(f"{api.url}/whoami").status_code == 401
    page = thief.get(f"{api.base}/tasks", allow_redirects=False)
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    assert api.store.sessions.count("ann") == 0


def test_the_session_store_keeps_no_usable_session_id(api):  # noqa: F811
    api.store.users.add("bob", "general", PASSWORD)
    browser = _login(api, "bob")
    (doc,) = list(api.store.db.sessions.find({"user": "bob"}))
    assert doc["expires_at"] > doc["created_at"] and len(doc["_id"]) == 64  # a SHA-256, not the id itself
    # A cookie naming bob whose session id is unknown is no login (forged ids get nothing)
    assert _logged_in(api, browser)
    api.store.db.sessions.update_one({"_id": doc["_id"]}, {"$set": {"expires_at": doc["created_at"]}})
    assert not _logged_in(api, browser)  # expired on the server: refused before the TTL monitor removes it


def test_a_password_change_ends_every_session_of_that_user_but_not_tokens(api):  # noqa: F811
    token = api.store.users.add("cat", "business", PASSWORD)
    laptop, phone = _login(api, "cat"), _login(api, "cat")
    api.store.users.add("dan", "business", PASSWORD)
    other = _login(api, "dan")
    # When cat changes their own password with their API token
    resp = api.call("PATCH", "/users/cat", token=token, json={"password": "another-long-one"})
    assert resp.status_code == 200, resp.text
    # Then both of cat's browsers are logged out, dan's is not, and cat's token still works
    assert not _logged_in(api, laptop) and not _logged_in(api, phone)
    assert _logged_in(api, other)
    assert api.call("GET", "/users/cat", token=token).status_code == 200
    # ... the new password logs in, the old one does not
    _login(api, "cat", "another-long-one")
    entry = api.call("GET", "/audit?action=user.password", "admin").json()["items"][0]
    assert (entry["actor"], entry["target"], entry["details"]) == ("cat", "cat", {"sessions_ended": 2})


def test_an_admin_revokes_a_users_sessions(api):  # noqa: F811
    api.store.users.add("eve", "super", PASSWORD)
    browser = _login(api, "eve")
    # A user may not end another's sessions
    assert api.call("DELETE", "/users/eve/sessions", "business").status_code == 403
    assert _logged_in(api, browser)
    # An admin may; the answer counts them, the trail records it
    resp = api.call("DELETE", "/users/eve/sessions", "admin")
    assert resp.status_code == 200 and resp.json() == {"name": "eve", "ended": 1}
    assert not _logged_in(api, browser)
    assert api.call("GET", "/audit?target=eve&action=session.revoke", "admin").json()["total"] == 1
    assert api.call("DELETE", "/users/nobody/sessions", "admin").status_code == 404


def test_removing_a_user_ends_their_sessions(api):  # noqa: F811
    api.store.users.add("fay", "general", PASSWORD)
    browser = _login(api, "fay")
    api.store.users.remove("fay")
    api.store.users.add("fay", "general", "a-new-users-password")  # the same name, a new person
    assert not _logged_in(api, browser)
