"""livecart's ground floor: what every domain package stands on, and nothing domain-specific.

Errors with stable codes, logs, ids, background chores, the short-lived cache, group commit,
JSON bodies and the HTTP route type, metrics, the Redis client, identity (accounts, roles,
tokens, the one ownership rule), the database driver with its migration runner, and the typed
catalogue of room events. Imports only `config`.
"""
