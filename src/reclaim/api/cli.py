"""``reclaim serve-platform``, ``reclaim platform-token`` and ``reclaim platform-shield-keys``.

Register in ``reclaim.cli`` with::

    app.command("serve-platform")(serve_platform_cmd)
    app.command("platform-token")(platform_token_cmd)
    app.add_typer(shield_keys_app, name="platform-shield-keys")
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reclaim.errors import InputError, ReclaimError

DbOpt = Annotated[
    str,
    typer.Option(
        "--db",
        help="SQLite file, or a postgresql:// URL (PostgreSQL backend).",
        envvar="RECLAIM_PLATFORM_DB",
    ),
]


def serve_platform(
    host: str = "127.0.0.1",
    port: int = 8000,
    db: str = "reclaim-platform.db",
    *,
    max_upload_mb: int = 32,
    allow_url_fetch: bool = False,
    allow_private_addresses: bool = False,
    hash_workers: int = 2,
    hash_queue: int = 8,
    hash_timeout_s: float = 30.0,
    hash_memory_mb: int = 2048,
    workers_log_level: str = "info",
    shield_keys: str | None = None,
    shield_rate_ip: int = 10,
    shield_rate_tenant: int = 100,
    shield_detect: str = "fast",
    shield_threshold: float | None = None,
    exchange_files: str | None = None,
    exchange_fetch_every_s: float = 0.0,
    poll_interval_s: float = 1.0,
    ready_max_lag_s: float = 5.0,
    index_snapshot: str | None = None,
    index_snapshot_every_s: float = 900.0,
    change_log_days: float | None = None,
) -> None:
    """Run the service (blocks). The database is created and migrated on first start. The
    match index loads in the background: ``/health/live`` answers at once, ``/health/ready``
    (and HMA's ``/status``) once it is loaded and following the change log."""
    import uvicorn

    from reclaim.api.app import Settings, create_app
    from reclaim.platform.store import open_store

    if shield_detect not in ("fast", "full"):
        raise InputError(f"--shield-detect {shield_detect!r}: choose fast or full")
    keys = shield_keys_path(db, shield_keys)
    if keys is None:
        typer.echo(
            "face shields are off (with PostgreSQL, give --shield-keys PATH to turn them on)",
            err=True,
        )
    store = open_store(db)
    settings = Settings(
        max_upload_bytes=max_upload_mb * 1024 * 1024,
        allow_url_fetch=allow_url_fetch,
        allow_private_addresses=allow_private_addresses,
        hash_workers=hash_workers,
        hash_queue=hash_queue,
        hash_timeout_s=hash_timeout_s,
        hash_memory_bytes=hash_memory_mb * 1024 * 1024,
        shield_keys=keys,
        shield_rate_per_ip=shield_rate_ip,
        shield_rate_per_tenant=shield_rate_tenant,
        shield_detect=shield_detect,
        shield_threshold=shield_threshold,
        exchange_files_dir=exchange_files,
        exchange_fetch_interval_s=exchange_fetch_every_s,
        poll_interval_s=poll_interval_s,
        ready_max_lag_s=ready_max_lag_s,
        background_load=True,
        index_snapshot_dir=index_snapshot,
        index_snapshot_every_s=index_snapshot_every_s,
        change_log_keep_s=None if change_log_days is None else change_log_days * 86400,
    )
    app = create_app(store, settings)
    uvicorn.run(app, host=host, port=port, log_level=workers_log_level, access_log=False)


def shield_keys_path(db: str, given: str | None) -> str | None:
    """The face shields' key file: ``given``; else ``shield-keys.json`` beside a SQLite
    database; None (shields off) for PostgreSQL without one, or when ``given`` is ``off``."""
    if given is not None:
        return None if given == "off" else given
    if db.startswith(("postgresql://", "postgres://")):
        return None
    return str(Path(db).resolve().parent / "shield-keys.json")


def serve_platform_cmd(
    db: DbOpt = "reclaim-platform.db",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    max_upload_mb: Annotated[int, typer.Option(help="Largest upload accepted (MiB).")] = 32,
    allow_url_fetch: Annotated[
        bool, typer.Option(help="Let /h/hash and /c/.../content fetch ?url= (server-side GET).")
    ] = False,
    allow_private_addresses: Annotated[
        bool,
        typer.Option(
            help="Let webhooks and URL fetches reach loopback/private addresses (a receiver on "
            "this machine or network). Off: public addresses only."
        ),
    ] = False,
    hash_workers: Annotated[
        int, typer.Option(help="Worker processes that decode and hash uploads.", min=1)
    ] = 2,
    hash_queue: Annotated[
        int, typer.Option(help="Uploads that may wait for a worker; beyond: 503.", min=0)
    ] = 8,
    hash_timeout: Annotated[
        float, typer.Option(help="Seconds one upload may take to hash (then 422).", min=1.0)
    ] = 30.0,
    hash_memory_mb: Annotated[
        int, typer.Option(help="Memory ceiling of each hashing worker (MiB; over: 413).", min=256)
    ] = 2048,
    shield_keys: Annotated[
        str | None,
        typer.Option(
            help="Face shields' key file (made on first use, mode 0600; keep it out of the "
            "database's backups). Default: shield-keys.json beside a SQLite database; with "
            "PostgreSQL shields are off unless given. 'off': no shields.",
        ),
    ] = None,
    shield_rate_ip: Annotated[
        int,
        typer.Option(help="Shield intakes (and revocations) per client address per hour.", min=1),
    ] = 10,
    shield_rate_tenant: Annotated[
        int, typer.Option(help="Shield intakes (and revocations) per tenant per hour.", min=1)
    ] = 100,
    shield_detect: Annotated[
        str,
        typer.Option(
            help="How uploads' faces are found for face shields: 'fast' (YuNet only) or 'full' "
            "(YuNet + HOG + CNN, as scans do; ~3x the CPU per photo).",
        ),
    ] = "fast",
    shield_threshold: Annotated[
        float | None,
        typer.Option(
            help="Score from which an upload's face matches a shield (default: the shipped "
            "operating point). Raise it when holding many shields: see docs/shield.md.",
            min=0.0,
            max=1.0,
        ),
    ] = None,
    exchange_files: Annotated[
        str | None,
        typer.Option(
            help="Folder of local_file exchange files: each tenant reads only its own "
            "DIR/<tenant>/ (default: no local_file exchanges).",
        ),
    ] = None,
    exchange_fetch_every: Annotated[
        float,
        typer.Option(
            help="Fetch every enabled exchange (ThreatExchange, NCMEC, StopNCII...) every this "
            "many seconds; 0: only on POST /c/exchange/NAME/fetch.",
            min=0.0,
        ),
    ] = 0.0,
    poll_interval: Annotated[
        float,
        typer.Option(
            help="Seconds between reads of the change log: writes made through other "
            "replicas are matchable here within about this long.",
            min=0.05,
        ),
    ] = 1.0,
    ready_max_lag: Annotated[
        float,
        typer.Option(
            help="/health/ready (and /status) answer 503 when the change log was last read "
            "to its end more than this many seconds ago.",
            min=0.1,
        ),
    ] = 5.0,
    index_snapshot: Annotated[
        str | None,
        typer.Option(
            help="Folder of the match index's snapshots: saved there regularly, and opened at "
            "start (then the change log replayed from it) instead of reading every signal from "
            "the database. Keep it on this machine's disk, writable by the service only.",
        ),
    ] = None,
    index_snapshot_every: Annotated[
        float,
        typer.Option(
            help="Seconds between snapshots (with --index-snapshot); 0: only after a load "
            "from the database.",
            min=0.0,
        ),
    ] = 900.0,
    change_log_days: Annotated[
        float | None,
        typer.Option(
            help="Delete change-log entries older than this many days (default: keep them). A "
            "replica cut off from the database for longer, or a snapshot older, loads again.",
            min=0.01,
        ),
    ] = None,
) -> None:
    """Run the platform service: hash banks, match-on-upload, review queue (HMA-compatible API).

    OpenAPI schema at /openapi.json, interactive docs at /docs. Create API tokens with
    `reclaim platform-token`.
    """
    try:
        serve_platform(
            host,
            port,
            db,
            max_upload_mb=max_upload_mb,
            allow_url_fetch=allow_url_fetch,
            allow_private_addresses=allow_private_addresses,
            hash_workers=hash_workers,
            hash_queue=hash_queue,
            hash_timeout_s=hash_timeout,
            hash_memory_mb=hash_memory_mb,
            shield_keys=shield_keys,
            shield_rate_ip=shield_rate_ip,
            shield_rate_tenant=shield_rate_tenant,
            shield_detect=shield_detect,
            shield_threshold=shield_threshold,
            exchange_files=exchange_files,
            exchange_fetch_every_s=exchange_fetch_every,
            poll_interval_s=poll_interval,
            ready_max_lag_s=ready_max_lag,
            index_snapshot=index_snapshot,
            index_snapshot_every_s=index_snapshot_every,
            change_log_days=change_log_days,
        )
    except ReclaimError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e


def platform_token_cmd(
    tenant: Annotated[str, typer.Argument(help="Tenant (platform) name; created if new.")],
    scopes: Annotated[
        str,
        typer.Option(
            help="Comma-separated scopes: hash, match, curate, review, tokens, fetch (read a "
            "bank's exchange feed: for partners pulling with python-threatexchange or HMA)."
        ),
    ] = "hash,match",
    name: Annotated[str, typer.Option(help="A label for the token.")] = "api",
    list_: Annotated[
        bool,
        typer.Option("--list", help="List the tenant's tokens (id, name, scopes, state)."),
    ] = False,
    revoke: Annotated[
        int | None, typer.Option(help="Revoke the tenant's token with this id (see --list).")
    ] = None,
    db: DbOpt = "reclaim-platform.db",
) -> None:
    """Create an API token for a tenant; prints the secret once (it is stored hashed).

    With --list, lists the tenant's tokens (never their secrets); with --revoke ID, revokes one
    (a running service refuses it within its 5 s token cache). Both are written to the tenant's
    audit log. The `tokens` scope lets a token list and revoke its tenant's tokens over the API.
    """
    import datetime

    from reclaim.platform.store import open_store

    def when(t: float | None) -> str:
        if t is None:
            return "-"
        return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    try:
        if list_ and revoke is not None:
            raise ReclaimError("give --list or --revoke, not both")
        store = open_store(db)
        if list_ or revoke is not None:
            tid = store.tenant_id(tenant)
            if tid is None:
                raise ReclaimError(f"tenant {tenant!r} not found")
            if list_:
                for t in store.list_tokens(tid):
                    state = "active" if t["revoked_at"] is None else "revoked"
                    typer.echo(
                        f"{t['id']}\t{t['name']}\t{','.join(t['scopes'])}\t"
                        f"created {when(t['created_at'])}\t{state} {when(t['revoked_at'])}"
                    )
                return
            assert revoke is not None
            if not store.revoke_token(tid, revoke):
                raise ReclaimError(
                    f"token {revoke} not found for tenant {tenant!r} (or already revoked)"
                )
            store.audit(tid, "cli", "token.revoke", f"token:{revoke}", {})
            typer.echo(f"revoked token {revoke}")
            return
        tid = store.ensure_tenant(tenant)
        secret = store.create_token(tid, name, [s.strip() for s in scopes.split(",") if s.strip()])
        made = store.token_for_secret(secret)
        target = f"token:{made.id}" if made else f"token:{name}"
        store.audit(tid, "cli", "token.create", target, {"name": name, "scopes": scopes})
    except (ReclaimError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    typer.echo(secret)


shield_keys_app = typer.Typer(
    help="The platform's face-shield key file (one secret per key epoch; never in the database).",
    no_args_is_help=True,
)


@shield_keys_app.command("rotate")
def shield_keys_rotate_cmd(
    keys: Annotated[
        Path, typer.Option("--keys", help="The key file (serve-platform --shield-keys).")
    ],
    retire: Annotated[
        list[int] | None,
        typer.Option(
            help="Also stop taking new shields under this epoch (repeatable); its shields keep "
            "matching until revoked."
        ),
    ] = None,
) -> None:
    """Add a new active key epoch (made first if the file does not exist). Running services
    publish it at their next poll; renewed shields can then be made under it."""
    from reclaim.platform.shield_keys import ShieldKeys, rotate

    try:
        new = rotate(keys, tuple(retire or ()))
        listed = ShieldKeys.open(keys, create=False).epochs()
    except ReclaimError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    typer.echo(f"added key epoch {new} to {keys}")
    for k in listed:
        state = "active" if k.active else "retired"
        typer.echo(f"epoch {k.epoch}\t{state}\tcreated {k.created_at}")
