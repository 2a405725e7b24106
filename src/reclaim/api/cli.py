"""``reclaim serve-platform`` and ``reclaim platform-token``.

Register in ``reclaim.cli`` with::

    app.command("serve-platform")(serve_platform_cmd)
    app.command("platform-token")(platform_token_cmd)
"""

from __future__ import annotations

from typing import Annotated

import typer

from reclaim.errors import ReclaimError

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
    workers_log_level: str = "info",
) -> None:
    """Run the service (blocks). The database is created and migrated on first start."""
    import uvicorn

    from reclaim.api.app import Settings, create_app
    from reclaim.platform.store import open_store

    store = open_store(db)
    settings = Settings(
        max_upload_bytes=max_upload_mb * 1024 * 1024,
        allow_url_fetch=allow_url_fetch,
        allow_private_addresses=allow_private_addresses,
    )
    app = create_app(store, settings)
    uvicorn.run(app, host=host, port=port, log_level=workers_log_level, access_log=False)


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
        )
    except ReclaimError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e


def platform_token_cmd(
    tenant: Annotated[str, typer.Argument(help="Tenant (platform) name; created if new.")],
    scopes: Annotated[
        str, typer.Option(help="Comma-separated scopes: hash, match, curate, review.")
    ] = "hash,match",
    name: Annotated[str, typer.Option(help="A label for the token.")] = "api",
    db: DbOpt = "reclaim-platform.db",
) -> None:
    """Create an API token for a tenant; prints the secret once (it is stored hashed)."""
    from reclaim.platform.store import open_store

    try:
        store = open_store(db)
        tid = store.ensure_tenant(tenant)
        secret = store.create_token(tid, name, [s.strip() for s in scopes.split(",") if s.strip()])
    except (ReclaimError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    typer.echo(secret)
