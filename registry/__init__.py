"""The function registry: allowed repositories, versions pinned to commits, and the code cache.

``service.Registry`` (register, list, flags, repositories) · ``catalog`` (publish-time version
choice and permissions) · ``resolver`` (worker side: (function, version) -> ``RunSpec``) ·
``loader`` (imports an entrypoint in the executor's child) · ``checkout`` (git mirrors and
read-only checkouts) · ``locations`` (which repository locations are allowed) · ``store``
(the ``functions`` and ``repos`` collections) · ``builtins``.
"""
