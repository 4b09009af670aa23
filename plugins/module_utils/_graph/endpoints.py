# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""Where requests may go. The configured endpoints are checked before any request, and every request (links
that Graph hands out included) passes :meth:`Destinations.check` in the transport before it is sent.

The rules: the access token goes only to the Graph endpoint; sign-in goes only to the authority host; both only
over HTTPS, whatever ``validate_certs`` says. A managed identity asks the endpoint its host publishes
(``IDENTITY_ENDPOINT``, ``MSI_ENDPOINT``, Azure Arc's agent, the instance metadata service), which may be plain
HTTP only on the local machine (loopback) or at the link-local metadata address ``169.254.169.254``."""

from __future__ import annotations

import ipaddress
import re
import typing as t
from urllib.parse import urlsplit

from .._common.errors import GraphError
from .._common.validation import shown

IMDS_HOST = "169.254.169.254"
IMDS_ORIGIN = f"http://{IMDS_HOST}"
ARC_AGENT_ORIGIN = "http://localhost:40342"  # Azure Arc's identity endpoint, msal's default on Arc machines
MANAGED_IDENTITY_VARIABLES = ("IDENTITY_ENDPOINT", "MSI_ENDPOINT", "AZURE_POD_IDENTITY_AUTHORITY_HOST")
DEFAULT_PORTS = {"https": 443, "http": 80}
_HOST_RE = re.compile(
    r"(?=.{1,253}\Z)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?"
)
# What an endpoint option may never hold: whitespace, control characters, backslashes (some parsers read them
# as "/"), and percent signs (an encoded dot or slash is a path trick).
_FORBIDDEN_RE = re.compile(r"[\s\x00-\x1f\x7f\\%]")


class UnsafeDestination(GraphError):
    """A request (or an endpoint option) would send credentials somewhere they must not go."""


class Origin(t.NamedTuple):
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}" + ("" if DEFAULT_PORTS[self.scheme] == self.port else f":{self.port}")


def origin_of(url: str) -> Origin | None:
    """The scheme, host and port of an absolute http(s) URL; None when it has none (or an unreadable one)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return Origin(scheme, parts.hostname.lower(), port if port is not None else DEFAULT_PORTS[scheme])


def _is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOST_RE.fullmatch(host))


def endpoint(value: str, option: str) -> str:
    """A configured endpoint (``graph_endpoint``, ``authority_host``) as ``https://host[:port]``. A value without a
    scheme gets ``https://``. Raises UnsafeDestination for anything but an HTTPS URL of a host: no user name,
    path, query or fragment, no plain HTTP (``validate_certs=false`` does not change that)."""
    text = value.strip()
    if "://" not in text:
        text = "https://" + text
    given = shown(re.sub(r"//[^/?#]*@", "//***@", value), 100)  # a user name and password are never shown
    if _FORBIDDEN_RE.search(text):
        raise UnsafeDestination(
            f"{option} {given} holds whitespace, a control character, a backslash or a percent "
            "sign; give the URL of a host, such as https://graph.microsoft.com."
        )
    try:
        parts = urlsplit(text)
        _port = parts.port  # raises ValueError for a port that is not a number
    except ValueError as exc:
        raise UnsafeDestination(f"{option} {given} is not a valid URL ({exc}).") from None
    if parts.scheme.lower() != "https":
        raise UnsafeDestination(
            f"{option} {given} must use https://: the access token and the sign-in credentials "
            "are never sent over plain HTTP (validate_certs=false does not change that)."
        )
    host = (parts.hostname or "").lower()
    if "@" in parts.netloc or not host or not _valid_host(host):
        raise UnsafeDestination(
            f"{option} {given} must name a host (and optionally a port), with no user name: "
            "for example https://graph.microsoft.com."
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or text.rstrip("/").endswith(("?", "#")):
        raise UnsafeDestination(
            f"{option} {given} must be the root URL of a host, without a path, query or "
            "fragment (the modules add /beta/... and /{tenant}/... themselves)."
        )
    return str(Origin("https", host, parts.port or DEFAULT_PORTS["https"]))


def managed_identity_origins(environ: t.Mapping[str, str]) -> tuple[str, ...]:
    """The endpoints a managed identity may be asked, from the host's environment (as msal finds them), keeping
    only the safe ones: HTTPS, or plain HTTP on the local machine or at the instance metadata address."""
    urls = [environ.get(name) for name in MANAGED_IDENTITY_VARIABLES] + [IMDS_ORIGIN, ARC_AGENT_ORIGIN]
    out: list[str] = []
    for url in urls:
        origin = origin_of(url) if url else None
        if origin is None:
            continue
        if origin.scheme == "https" or _is_local(origin.host) or origin.host == IMDS_HOST:
            out.append(str(origin))
    return tuple(dict.fromkeys(out))


class Destinations:
    """The origins this task may talk to. The access token only to Graph."""

    def __init__(self, graph: str, authority: str, managed_identity: t.Iterable[str] = ()) -> None:
        self.graph = t.cast(Origin, origin_of(graph))
        self.authority = t.cast(Origin, origin_of(authority))
        self.managed_identity = tuple(t.cast(Origin, origin_of(url)) for url in managed_identity)

    def check(self, url: str, headers: t.Mapping[str, str]) -> None:
        """Raise UnsafeDestination, before anything is sent, for a request that may not go to ``url``."""
        origin = origin_of(url)
        bearer = any(
            name.lower() == "authorization" and str(value).lower().startswith("bearer ")
            for name, value in headers.items()
        )
        allowed = (self.graph,) if bearer else (self.graph, self.authority, *self.managed_identity)
        if origin in allowed:
            return
        where = str(origin) if origin else repr(url.split("?", 1)[0][:200])
        if bearer:
            what, rule = "the access token", f"the access token goes only to the Graph endpoint {self.graph}"
        else:
            what, rule = (
                "a request",
                f"requests go only to the Graph endpoint {self.graph} and the authority {self.authority}",
            )
            if self.managed_identity:
                rule += (
                    ", and to a managed identity endpoint over HTTPS or, over plain HTTP, only on this machine "
                    f"(loopback) or at {IMDS_HOST}"
                )
        raise UnsafeDestination(
            f"Refused to send {what} to {where}: {rule}, over HTTPS (validate_certs does not "
            "change that). A configured endpoint or a link in an answer pointed there; nothing was "
            "sent."
        )
