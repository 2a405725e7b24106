"""A request's clock and what comes next: pure functions of the request, its destination and
the time (``now``), so a front end or a test can ask "what now?" at any instant.

- draft: send it (the link and what it requires);
- sent or acknowledged, before its deadline: wait (the law's clock, or reclaim's follow-up);
- after the deadline: the escalation chain's next step (reminder, then complaint or regulator,
  then trusted flagger, then police); once she has taken a step (``escalate``) it gets its own
  wait before the following one is due;
- refused: the chain's next step that is not a reminder, at once;
- removed: nothing (``reclaim watch`` checks it stays down); reappeared: send it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from reclaim.requests.catalog import Destination, Step
from reclaim.store.requests import RequestRecord, RequestStatus

#: What a next step asks: send, wait, resend, none, or an escalation step's kind.
WAITING = "wait"


def iso(dt: datetime) -> str:
    """``dt`` as the case stores times (UTC, milliseconds, ``Z``)."""
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse(text: str) -> datetime:
    """A stored time back as an aware datetime."""
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def clock(now: datetime | None) -> datetime:
    """``now`` (aware, UTC), or the current time."""
    if now is None:
        return datetime.now(UTC)
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def first_deadline(dest: Destination, sent: datetime) -> tuple[datetime, bool]:
    """When a request sent at ``sent`` is due, and whether that is the law's clock."""
    if dest.clock_hours is not None:
        return sent + timedelta(hours=dest.clock_hours), True
    return sent + timedelta(days=dest.follow_up_days), False


@dataclass(frozen=True)
class NextStep:
    """What she should do next on a request, and by when.

    ``kind``: ``send``, ``wait``, ``resend``, ``none``, or an escalation step's kind
    (``reminder``, ``complaint``, ``regulator``, ``trusted_flagger``, ``police``, ``check``).
    ``due``: when it is due (ISO 8601 UTC). ``overdue``: the deadline has passed.
    ``needs_action``: she has something to do now. ``to``: the destination the step sends her
    to (draft it with ``draft(..., to)``). ``step``: the escalation step's index in the chain.
    """

    kind: str
    text: dict[str, str]
    due: str | None = None
    overdue: bool = False
    needs_action: bool = False
    to: str | None = None
    step: int | None = None
    legal: bool = False  # ``due`` is the law's clock, not reclaim's follow-up

    def say(self, lang: str) -> str:
        return self.text.get(lang) or self.text.get("en", "")

    def as_record(self, lang: str | None = None) -> dict[str, object]:
        rec: dict[str, object] = {
            "kind": self.kind,
            "due": self.due,
            "overdue": self.overdue,
            "needs_action": self.needs_action,
            "legal_deadline": self.legal,
            "to": self.to,
            "step": self.step,
        }
        rec["text"] = self.say(lang) if lang else dict(self.text)
        return rec


def step_index(req: RequestRecord, dest: Destination) -> int | None:
    """The index of the escalation step now due (refused: skipping reminders), or None when
    every step was taken."""
    i = req.escalation
    if req.status is RequestStatus.REFUSED:
        while i < len(dest.escalation) and dest.escalation[i].kind == "reminder":
            i += 1
    return i if i < len(dest.escalation) else None


def _step(s: Step, i: int, due: str | None, overdue: bool) -> NextStep:
    return NextStep(s.kind, dict(s.text), due, overdue, True, s.to, i)


def next_step(req: RequestRecord, dest: Destination, now: datetime | None = None) -> NextStep:
    """What comes next for ``req`` at ``now`` (see the module docstring)."""
    t = clock(now)
    status = req.status
    link = dest.link
    if status is RequestStatus.DRAFT:
        return NextStep(
            "send",
            {
                "fr": f"Envoyez-la : {dest.label('fr')} ({link}), puis marquez-la envoyée.",
                "en": f"Send it: {dest.label('en')} ({link}), then mark it sent.",
            },
            needs_action=True,
        )
    if status is RequestStatus.REMOVED:
        return NextStep(
            "none",
            {
                "fr": "Retiré. « reclaim watch » peut vérifier qu'il ne revient pas.",
                "en": 'Removed. "reclaim watch" can check that it stays down.',
            },
        )
    if status is RequestStatus.REAPPEARED:
        return NextStep(
            "resend",
            {
                "fr": "Le contenu est revenu : renvoyez la demande (puis marquez-la envoyée). "
                "Une plateforme soumise au TAKE IT DOWN Act doit aussi retirer les copies "
                "identiques connues.",
                "en": "The content is back: send the request again (then mark it sent). A "
                "platform under the TAKE IT DOWN Act must also remove known identical copies.",
            },
            due=iso(t),
            needs_action=True,
        )
    # sent, acknowledged, refused
    if req.deadline is not None and t < parse(req.deadline):
        legal = req.deadline_legal
        until = req.deadline[:16].replace("T", " ")
        kind = {
            "fr": "délai légal" if legal else "suivi proposé par reclaim, pas un délai légal",
            "en": "legal deadline" if legal else "reclaim's follow-up, not a legal deadline",
        }
        return NextStep(
            WAITING,
            {
                "fr": f"En attente de {dest.label('fr')} jusqu'au {until} UTC ({kind['fr']}).",
                "en": f"Waiting for {dest.label('en')} until {until} UTC ({kind['en']}).",
            },
            due=req.deadline,
            legal=legal,
        )
    i = step_index(req, dest)
    overdue = req.deadline is not None
    if i is None:
        return NextStep(
            "none",
            {
                "fr": "Toutes les étapes prévues ont été faites. Un avocat ou une association "
                "d'aide aux victimes (France Victimes : 116 006) peut vous aider pour la suite.",
                "en": "Every planned step has been taken. A lawyer or a victims' support "
                "organisation can help you with what comes next.",
            },
            due=req.deadline,
            overdue=overdue,
            needs_action=True,
        )
    return _step(dest.escalation[i], i, req.deadline or iso(t), overdue)
