def test_audit_appends_and_pages(store):
    a = store.audit.record("admin", "user.role", "ann", old="general", new="business")
    store.audit.record("admin", "token.create", "bob", label="ci")
    docs, total = store.audit.page({})
    assert total == 2 and docs[0]["action"] == "token.create" and docs[1]["_id"] == a
    docs, total = store.audit.page({"target": "ann"})
    assert total == 1 and docs[0]["details"] == {"old": "general", "new": "business"}
