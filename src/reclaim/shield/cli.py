"""``reclaim shield create | list | send | export | revoke``: her face shields for platforms
(issue 20). Registered in cli.py with ``app.add_typer(shield_app)``.

Thin: each command calls one operation of ``reclaim.shield.case``, which takes the case lock
and writes the custody entry. Only ``create`` (given a platform's address), ``send`` and
``revoke`` use the network, and only to the platform's address she gave.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from reclaim.store import CaseStore
from reclaim.store.templatelock import TemplateKey

out = Console()
err = Console(stderr=True)

shield_app = typer.Typer(
    name="shield",
    help="Face shields: let a platform spot your face in new uploads, fakes included, without "
    "ever holding your face template.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Lang(StrEnum):
    en = "en"
    fr = "fr"


CaseOpt = Annotated[Path, typer.Option("--case", "-c", help="Case directory.")]
ShieldArg = Annotated[
    str,
    typer.Argument(help="The shield's id, as `reclaim shield list` shows it (or its first 8+)."),
]

PassphraseFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        help="When the case's face templates are locked: read their passphrase from this "
        "file's first line ('-': standard input). Or set RECLAIM_TEMPLATE_PASSPHRASE; "
        "otherwise it is asked for when a terminal is there.",
    ),
]

_AGREE = {"en": "Do you agree?", "fr": "Acceptez-vous ?"}


def _say(text: str) -> None:
    err.print(text, highlight=False, markup=False, soft_wrap=True)


def _passphrase(store: CaseStore, passphrase_file: Path | None) -> TemplateKey | None:
    """In a case whose face templates are locked: the key their passphrase gives (from
    --passphrase-file, RECLAIM_TEMPLATE_PASSPHRASE, or asked), derived once for every step of
    the command. None when they are not locked or no passphrase was given (the operation then
    says what it needs)."""
    from reclaim.cli import _read_passphrase

    if not store.templates_locked():
        return None
    passphrase = _read_passphrase(passphrase_file, "Passphrase of the face templates")
    return store.template_key(passphrase) if passphrase else None


@shield_app.command("create")
def create_cmd(
    case: CaseOpt,
    name: Annotated[str, typer.Option("--name", "-n", help="The enrolled person's name.")],
    platform: Annotated[
        str,
        typer.Option(
            "--for",
            metavar="PLATFORM",
            help="The platform: its shield address (https://host/shield/v1/NAME) or a saved "
            "intake-key file.",
        ),
    ],
    out_path: Annotated[
        Path | None, typer.Option("--out", "-o", help="Also write the shield (JSON) here.")
    ] = None,
    send: Annotated[
        bool, typer.Option("--send", help="Send the shield to the platform's address.")
    ] = False,
    lang: Annotated[Lang, typer.Option(help="Language of the consent text: en or fr.")] = Lang.en,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="You have read the consent text and agree.")
    ] = False,
    passphrase_file: PassphraseFileOpt = None,
) -> None:
    """Make a shield of your enrollment for one platform (with your consent).

    It holds protected templates (never your face template) and a consent receipt naming no
    one; its revocation secret stays in the case."""
    from reclaim.cli import fail, user_errors
    from reclaim.shield.case import (
        PlatformError,
        consent_text,
        create_shield,
        enrollment_id,
        export_shield,
        intake_key_for,
        send_shield,
        write_private,
    )

    with user_errors(), CaseStore.open(case) as store:
        enrollment_id(store, name)  # before anything goes online
        if out_path is not None and out_path.is_dir():
            fail(f"{out_path} is a folder; give a file name for the shield")
        keys = intake_key_for(platform)
        if send and keys.url is None:
            fail(
                "--send needs the platform's address (https://…/shield/v1/NAME), not a saved "
                "key file; without --send, give the file --out writes to the platform yourself"
            )
        out.print(consent_text(keys.platform, lang.value), highlight=False, markup=False,
                  soft_wrap=True)  # fmt: skip
        if not yes:
            try:
                agreed = typer.confirm(_AGREE[lang.value], default=False)
            except typer.Abort:
                agreed = False
            if not agreed:
                fail("no shield made: it needs your agreement (answer yes, or pass --yes)")
        passphrase = _passphrase(store, passphrase_file)
        info = create_shield(
            store, name, keys, consent=True, lang=lang.value, passphrase=passphrase
        )
        _say(
            f"shield {info.shield_id} made for {info.platform!r} (key epoch {info.epoch}, "
            f"{info.templates} protected template(s)); its revocation secret stays in this case"
        )
        if out_path is not None:
            write_private(out_path, export_shield(store, info.shield_id, passphrase=passphrase))
            _say(f"wrote {out_path}: give it to the platform")
        if send:
            try:
                sent = send_shield(store, info.shield_id, passphrase=passphrase)
            except PlatformError as e:
                fail(
                    f"the shield is made but was not sent: {e}. Send it later with "
                    f"reclaim shield send --case {case} {info.shield_id[:8]}",
                    code=1,
                )
            _say(f"sent to {info.platform!r}: {sent.status}")
        elif out_path is None:
            _say(
                f"not sent: reclaim shield send --case {case} {info.shield_id[:8]} sends it, "
                f"reclaim shield export --case {case} {info.shield_id[:8]} writes it out"
            )


@shield_app.command("list")
def list_cmd(
    case: CaseOpt,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Your shields: for which platform, under which key epoch, sent, revoked."""
    from reclaim.cli import user_errors
    from reclaim.shield.case import list_shields

    with user_errors(), CaseStore.open(case) as store:
        rows = list_shields(store)
    if as_json:
        for s in rows:
            print(json.dumps(s.as_record(), ensure_ascii=False))
        return
    if not rows:
        out.print("no shield in this case  →  reclaim shield create")
        return
    from rich.markup import escape

    t = Table("shield", "person", "platform", "epoch", "made", "status")
    for s in rows:
        when = s.revoked_at or s.sent_at or ""
        t.add_row(
            s.shield_id[:12],
            escape(s.enrollment),
            escape(s.platform),
            str(s.epoch),
            s.created_at[:10],
            f"{s.status} {when[:10]}".strip(),
        )
    out.print(t)


@shield_app.command("send")
def send_cmd(case: CaseOpt, shield: ShieldArg, passphrase_file: PassphraseFileOpt = None) -> None:
    """Send a shield to the platform it was made for (the address given at `create`).

    In a case whose face templates are locked, the shield is stored encrypted: it asks for
    their passphrase."""
    from reclaim.cli import user_errors
    from reclaim.shield.case import send_shield

    with user_errors(), CaseStore.open(case) as store:
        sent = send_shield(store, shield, passphrase=_passphrase(store, passphrase_file))
    _say(f"shield {sent.shield.shield_id} sent to {sent.shield.platform!r}: {sent.status}")


@shield_app.command("export")
def export_cmd(
    case: CaseOpt,
    shield: ShieldArg,
    out_path: Annotated[
        Path | None, typer.Option("--out", "-o", help="File to write (default: print it).")
    ] = None,
    passphrase_file: PassphraseFileOpt = None,
) -> None:
    """Write a shield out, to give the platform yourself.

    JSON: protected templates and the signed consent receipt; no secret. In a case whose face
    templates are locked, the shield is stored encrypted: it asks for their passphrase."""
    from reclaim.cli import user_errors
    from reclaim.shield.case import export_shield, write_private

    with user_errors(), CaseStore.open(case) as store:
        text = export_shield(store, shield, passphrase=_passphrase(store, passphrase_file))
        if out_path is None:
            print(text)
            return
        write_private(out_path, text)
    _say(f"wrote {out_path}: give it to the platform")


@shield_app.command("revoke")
def revoke_cmd(
    case: CaseOpt,
    shield: ShieldArg,
    send: Annotated[
        bool,
        typer.Option(
            "--send/--no-send",
            help="Send the revocation to the platform (default), or only write the request "
            "(with its secret) for you to send.",
        ),
    ] = True,
    out_path: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="With --no-send: file for the revocation request."),
    ] = None,
) -> None:
    """Withdraw a shield: the platform must delete it and everything derived from it.

    A new shield for that platform afterwards uses another key, unlinkable to this one."""
    from reclaim.cli import fail, user_errors
    from reclaim.shield.case import revoke_shield

    if send and out_path is not None:
        fail("--out goes with --no-send (the revocation request is written instead of sent)")
    with user_errors(), CaseStore.open(case) as store:
        res = revoke_shield(store, shield, send=send, out=out_path)
    s = res.shield
    if res.sent:
        _say(f"shield {s.shield_id} revoked: {s.platform!r} took the revocation")
        return
    if out_path is None:
        print(res.request or "", end="")
    _say(
        f"shield {s.shield_id} marked revoked here. Send the revocation request"
        + (f" ({out_path})" if out_path is not None else " (printed above)")
        + f" to {s.platform!r}"
        + (f" at {s.platform_url}/revoke" if s.platform_url else "")
        + ": it holds the secret that proves the shield is yours, so keep it private"
    )
