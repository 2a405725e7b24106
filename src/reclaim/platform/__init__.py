"""The platform service's back end: storage (SQLite/PostgreSQL), matcher, webhooks."""
