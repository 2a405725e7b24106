"""The platform service's data layer: one interface, SQLite and PostgreSQL behind it.

``PlatformStore`` holds every query in portable SQL (``?`` placeholders, ``RETURNING``).
``open_store("x.db")`` opens SQLite (WAL, one connection per thread);
``open_store("postgresql://…")`` opens PostgreSQL through psycopg 3.

Split by concern into parts that are mixins of one base: ``base`` (connection per thread,
transactions, ``_q``, migrations, rows read by column name into records), ``tenants`` (tenants,
tokens), ``banks`` (banks, content, signals, the change log), ``review`` (review queue,
decisions, audit log), ``webhooks`` (webhooks, deliveries), ``shields`` (face shields and their
stored codes), ``exchanges`` (signal exchanges, their records and credentials, bank feeds), and
``backends`` (``PlatformStore`` composed of the five parts, then SQLite and
PostgreSQL). Mixins rather than repositories the
store holds: callers keep one object and one call per query (``store.create_bank(...)``), and a
part never calls another, so none needs the others to be read.

Tenancy by construction: every method that reads, changes or deletes a tenant's data takes the
tenant id as its first argument, and every statement it runs filters on that id in the SQL itself
(and on the bank's id where a bank is named) — never on a row id alone, and never on a tenant id
taken from an object the caller hands in. A bank, content item, signal, review item, decision,
webhook or token of another tenant is simply "not found", and is left as it was. A method that
takes no tenant is marked ``@system_wide`` and is called only by the service's own machinery
(authentication, administration, the matcher, the webhook worker); a part whose public method
does neither is refused when its class is defined. The schema holds the rule a second time
(``migrations``: a row's tenant must be its parent's).

Ids are 64-bit: an integer argument outside the signed 64-bit range is refused with
``OutOfRange`` before it reaches either database (SQLite raises OverflowError on it, PostgreSQL
would compare it as a numeric).
"""

from reclaim.platform.store.backends import (
    PlatformStore,
    PostgresPlatformStore,
    SqlitePlatformStore,
    open_store,
)
from reclaim.platform.store.banks import Bank, Change, Content
from reclaim.platform.store.base import (
    INT64_MAX,
    INT64_MIN,
    Conflict,
    NotFound,
    OutOfRange,
    system_wide,
)
from reclaim.platform.store.exchanges import ExchangeRecord, ExchangeRow, FeedEntry
from reclaim.platform.store.review import ReviewItem
from reclaim.platform.store.shields import ShieldRow
from reclaim.platform.store.tenants import SCOPES, TOKEN_PREFIX, Token, hash_token
from reclaim.platform.store.webhooks import Delivery, Webhook

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "SCOPES",
    "TOKEN_PREFIX",
    "Bank",
    "Change",
    "Conflict",
    "Content",
    "Delivery",
    "ExchangeRecord",
    "ExchangeRow",
    "FeedEntry",
    "NotFound",
    "OutOfRange",
    "PlatformStore",
    "PostgresPlatformStore",
    "ReviewItem",
    "ShieldRow",
    "SqlitePlatformStore",
    "Token",
    "Webhook",
    "hash_token",
    "open_store",
    "system_wide",
]
