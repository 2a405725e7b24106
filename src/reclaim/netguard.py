"""Where the platform service may send requests: public addresses only (SSRF guard).

The service makes outbound requests on behalf of its API clients: webhook deliveries to URLs a
tenant registered, and ``?url=`` fetches when started with ``--allow-url-fetch``. Without a
guard, any token holder could make the server reach what only it can reach: its loopback
services, the private network, a cloud metadata endpoint (169.254.169.254). So a host is
accepted only when every address it resolves to is a public (global unicast) address.

What counts as public:

- IPv4: ``is_global`` and not multicast (so not loopback, private, link-local, shared
  100.64/10, reserved, ...).
- IPv6 spellings of an IPv4 address are that IPv4 address, public or not as it is: IPv4-mapped
  ``::ffff:a.b.c.d``, IPv4-compatible ``::a.b.c.d``, IPv4-translated ``::ffff:0:a.b.c.d``,
  NAT64 ``64:ff9b::a.b.c.d`` (a NAT64 gateway forwards there) and 6to4 ``2002:aabb:ccdd::/48``.
- Other IPv6: inside the global unicast space 2000::/3, ``is_global``, and no non-public IPv4 in
  a Teredo address (``2001::/32``: server and de-obfuscated client; Teredo is not global
  anyway) or an ISATAP interface identifier (``…:0:5efe:a.b.c.d`` / ``…:200:5efe:…``). The
  local-use NAT64 prefix 64:ff9b:1::/48 (where its IPv4 sits depends on the operator's prefix
  length) is refused whatever it carries, as are site-local fec0::/10 and discard 100::/64.

Odd spellings of IPv4 (``2130706433``, ``0x7f.1``, ``127.1``, ``0177.0.0.1``) are not parsed
here: the host goes to the system resolver, which reads them exactly as the socket layer does
(all four are 127.0.0.1), and what it answers is what is checked and connected to.

One resolution per connection (no DNS rebinding window): ``GuardedTransport`` is an httpx
transport whose connections resolve the host once, refuse it unless every address of that
answer is public, and connect to an address of that same answer. The request keeps its Host
header, and TLS its SNI and certificate check, for the name in the URL (httpcore hands the
name, not the address, to the TLS layer). Each redirect hop is a new request, so it is resolved
and checked the same way. ``host_problem`` is the same check without a connection (used when a
webhook is registered). Local receivers (tests, a single-machine set-up) are allowed with
``allow_private_addresses``.

The person's own ``reclaim scan`` of a URL list is not restricted: it runs on her machine, for
her.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Iterable

import httpcore
import httpx

__all__ = [
    "AddressRefused",
    "GuardedTransport",
    "address_problem",
    "host_problem",
    "refusal",
    "resolve",
]

_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
#: /96 prefixes whose last 32 bits are an IPv4 address: the IPv6 address is that IPv4's.
_CARRIERS_96 = (
    (ipaddress.IPv6Network("::ffff:0:0/96"), "IPv4-mapped"),
    (ipaddress.IPv6Network("::ffff:0:0:0/96"), "IPv4-translated"),
    (ipaddress.IPv6Network("64:ff9b::/96"), "NAT64"),
    (ipaddress.IPv6Network("::/96"), "IPv4-compatible"),
)
_UNSPECIFIED_AND_LOOPBACK = (ipaddress.IPv6Address("::"), ipaddress.IPv6Address("::1"))
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


def _v4_kind(ip: ipaddress.IPv4Address) -> str | None:
    if ip.is_global and not ip.is_multicast:
        return None
    for what, flag in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
    ):
        if flag:
            return what
    return "non-public"


def _v6_kind(ip: ipaddress.IPv6Address) -> str | None:
    for what, flag in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("site-local", ip.is_site_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
    ):
        if flag:
            return what
    if ip not in _GLOBAL_UNICAST or not ip.is_global:
        return "non-public"
    return None


def _carried(ip: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses of Teredo and ISATAP forms, with the form's name."""
    out: list[tuple[str, ipaddress.IPv4Address]] = []
    if ip.teredo is not None:
        server, client = ip.teredo
        out += [("Teredo server", server), ("Teredo client", client)]
    if (int(ip) >> 32) & 0xFDFF_FFFF == 0x0000_5EFE:  # ISATAP interface id, either u/l bit
        out.append(("ISATAP", ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)))
    return out


def _kind(address: str) -> tuple[str, str | None]:
    """(the address as shown, None when public else what kind of address it is)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address, "not an IP"
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip), _v4_kind(ip)
    if ip in _UNSPECIFIED_AND_LOOPBACK:  # also inside ::/96, but not an IPv4's address
        return str(ip), "loopback" if ip.is_loopback else "non-public"
    # Forms that are only another spelling of an IPv4 address: that IPv4 decides, whatever
    # this Python's ipaddress thinks of the IPv6 range (its lists differ between versions).
    for net, form in _CARRIERS_96:
        if ip in net:
            v4 = ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
            return f"{ip} ({form} form of {v4})", _v4_kind(v4)
    if ip.sixtofour is not None:
        return f"{ip} (6to4 form of {ip.sixtofour})", _v4_kind(ip.sixtofour)
    if ip in _LOCAL_NAT64:
        return str(ip), "local-use NAT64"
    for form, v4 in _carried(ip):
        v4_what = _v4_kind(v4)
        if v4_what is not None:
            return f"{ip} ({form} {v4})", v4_what
    return str(ip), _v6_kind(ip)


def address_problem(address: str) -> str | None:
    """None for a public (global unicast) IP address, else a one-line reason."""
    ip, what = _kind(address)
    return None if what is None else f"{ip} is a {what} address"


class AddressRefused(httpcore.ConnectError):
    """A connection refused by the guard (the message is the one-line reason). httpx hands it
    on as the ``__cause__`` of an ``httpx.ConnectError``; ``refusal`` finds it there."""


def refusal(error: BaseException) -> str | None:
    """The guard's reason when ``error`` (an httpx error) is a refused address, else None."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, AddressRefused):
            return str(seen)
        seen = seen.__cause__
    return None


def resolve(host: str, port: int = 0, *, allow_private: bool = False) -> list[str]:
    """The addresses ``host`` resolves to, from ONE lookup, in the resolver's order.

    Raises AddressRefused unless every one is public (``allow_private``: no check), and
    httpcore.ConnectError when the name does not resolve. Literal addresses, however spelled,
    are read by the same resolver (no query leaves the machine for them)."""
    name = host.strip("[]")
    if not name:
        raise AddressRefused("no host")
    try:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise httpcore.ConnectError(f"cannot resolve {host!r} ({e.__class__.__name__})") from e
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise httpcore.ConnectError(f"cannot resolve {host!r}")
    if not allow_private:
        for address in addresses:
            ip, what = _kind(address)
            if what is not None:
                where = f"{ip} is" if address == name else f"{host} resolves to {ip},"
                raise AddressRefused(f"{where} a {what} address; only public addresses are allowed")
    return addresses


def host_problem(host: str) -> str | None:
    """None when every address ``host`` resolves to is public, else a one-line reason (the
    addresses do not depend on the port, so none is asked for)."""
    if not host:
        return "no host"
    try:
        resolve(host)
    except httpcore.ConnectError as e:
        return str(e)
    return None


class _PinnedBackend(httpcore.NetworkBackend):
    """httpcore network backend: resolve once, check, connect to an address that was checked."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._sockets = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        last: Exception | None = None
        for address in resolve(host, port, allow_private=self.allow_private):
            try:
                # A literal address: the socket layer parses it, no second lookup.
                return self._sockets.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                last = e
        assert last is not None
        raise last

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise AddressRefused("unix sockets are not allowed")

    def sleep(self, seconds: float) -> None:
        self._sockets.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """An httpx transport whose every connection goes to an address that was checked in the
    same, single DNS resolution (see the module docstring). No proxy (a proxy would resolve
    the name itself); ``allow_private`` keeps the single resolution but skips the check.

    A refused connection raises ``httpx.ConnectError`` caused by ``AddressRefused``
    (``refusal(e)`` gives its reason). Give the client ``trust_env=False``: otherwise httpx
    sends URLs that match ``HTTP(S)_PROXY`` through its own proxy transports, not this one."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits | None = None,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        super().__init__(verify=verify, trust_env=False, limits=limits)
        # httpx builds its httpcore pool without a way to pass a network backend: replace it
        # by an identical pool that has one (and fail loudly if httpx's layout ever changes,
        # rather than send unguarded).
        if not isinstance(getattr(self, "_pool", None), httpcore.ConnectionPool):
            raise RuntimeError("unsupported httpx version: cannot pin connections")
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_PinnedBackend(allow_private),
        )
