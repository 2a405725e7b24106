"""Where the platform service may send requests: public addresses only (SSRF guard).

The service makes outbound requests on behalf of its API clients: webhook deliveries to URLs a
tenant registered, and ``?url=`` fetches when started with ``--allow-url-fetch``. Without a
guard, any token holder could make the server reach what only it can reach: its loopback
services, the private network, a cloud metadata endpoint (169.254.169.254). So a host is
accepted only when every address it resolves to is a public (global unicast) address.

The check runs before each request (and before each redirect is followed). A name that resolves
to a public address when checked and to a private one a moment later (DNS rebinding) is not
caught; operators who need that closed should also filter egress at the network level. Local
receivers (tests, a single-machine set-up) are allowed with ``allow_private_addresses``.

The person's own ``reclaim scan`` of a URL list is not restricted: it runs on her machine, for
her.
"""

from __future__ import annotations

import ipaddress
import socket

__all__ = ["address_problem", "host_problem"]


def _kind(address: str) -> tuple[str, str | None]:
    """(the address as written, None when public else what kind of address it is)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address, "not an IP"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_global and not ip.is_multicast:
        return str(ip), None
    for what, flag in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
    ):
        if flag:
            return str(ip), what
    return str(ip), "non-public"


def address_problem(address: str) -> str | None:
    """None for a public (global unicast) IP address, else a one-line reason."""
    ip, what = _kind(address)
    return None if what is None else f"{ip} is a {what} address"


def host_problem(host: str) -> str | None:
    """None when every address ``host`` resolves to is public, else a one-line reason (the
    addresses do not depend on the port, so none is asked for)."""
    if not host:
        return "no host"
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        return f"cannot resolve {host!r} ({e.__class__.__name__})"
    if not infos:
        return f"cannot resolve {host!r}"
    for info in infos:
        ip, what = _kind(str(info[4][0]))
        if what is not None:
            where = f"{ip} is" if ip == host.strip("[]") else f"{host} resolves to {ip},"
            return f"{where} a {what} address; only public addresses are allowed"
    return None
