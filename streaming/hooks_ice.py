"""The ICE side of streaming/hooks.py: which addresses are offered, and who may talk to them.

- aioice's `get_host_addresses` leaves out loopback and offers every other interface; with
  `ice_addresses` set the relay offers exactly those (tests: 127.0.0.1 only).
- A peer offers candidates on every interface it has: a browser on this machine offers this
  machine's own LAN addresses next to 127.0.0.1, and aioice pairs any two candidates of the same
  IP version, so it would send connectivity checks to all of them, and it hands every datagram a
  socket receives to ICE/DTLS/RTP whatever its source. Scope rule, process-wide: a local
  candidate on a loopback address pairs with, and accepts datagrams from, only the offered
  loopback addresses; a local candidate on any other address, only non-loopback peers. So with
  `ice_addresses=127.0.0.1` the one pair that can form is 127.0.0.1 ↔ 127.0.0.1, and nothing is
  sent to, or taken from, any other address; a node offering its public address serves the
  internet as before. (A literal "only from `ice_addresses`" would refuse every real viewer of
  a node that offers its public address.)

Both hooks replace a method on an aioice class (`Candidate.can_pair_with`,
`StunProtocol.datagram_received`); `check()` makes sure they are still what the hooks expect.
"""

from __future__ import annotations

import functools
import inspect
import ipaddress
from collections.abc import Sequence
from typing import Any

import aioice.candidate
import aioice.ice

_original_get_host_addresses = aioice.ice.get_host_addresses
_original_can_pair_with = aioice.candidate.Candidate.can_pair_with
_original_datagram_received = aioice.ice.StunProtocol.datagram_received
_offered: tuple[str, ...] = ()
_offered_loopback: frozenset[str] = frozenset()
dropped = 0  # datagrams refused by the scope rule, since the process started


@functools.lru_cache(maxsize=4096)
def _is_loopback(host: str) -> bool | None:
    """None for what is not an IP address (an mDNS name: aioice resolves it later)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return None


def in_scope(local: str, remote: str) -> bool:
    """Whether a local candidate's address may talk with a remote address (see the module)."""
    local_loopback, remote_loopback = _is_loopback(local), _is_loopback(remote)
    if local_loopback is None or remote_loopback is None:
        return local_loopback is not True and remote_loopback is not True
    if local_loopback:
        return remote_loopback and (remote in _offered_loopback or not _offered_loopback)
    return not remote_loopback


def _get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    if not _offered:
        return list(_original_get_host_addresses(use_ipv4, use_ipv6))
    return [a for a in _offered if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]


def _can_pair_with(self: aioice.candidate.Candidate, other: aioice.candidate.Candidate) -> bool:
    return _original_can_pair_with(self, other) and in_scope(self._network_host, other._network_host)


def _datagram_received(self: aioice.ice.StunProtocol, data: bytes | str, addr: tuple[Any, ...]) -> None:
    local = getattr(self, "local_candidate", None)
    if local is not None and not in_scope(local._network_host, addr[0]):
        global dropped
        dropped += 1
        return
    _original_datagram_received(self, data, addr)


def install(addresses: Sequence[str] = ()) -> None:
    """Offer only `addresses` (empty: aioice's own choice) and keep every pair in scope."""
    global _offered, _offered_loopback
    _offered = tuple(addresses)
    _offered_loopback = frozenset(a for a in _offered if _is_loopback(a))
    aioice.ice.get_host_addresses = _get_host_addresses
    aioice.candidate.Candidate.can_pair_with = _can_pair_with  # type: ignore[method-assign]
    aioice.ice.StunProtocol.datagram_received = _datagram_received  # type: ignore[method-assign]


EXPECTED: list[tuple[object, str, tuple[str, ...] | None]] = [
    (aioice.ice, "get_host_addresses", ("use_ipv4", "use_ipv6")),
    (aioice.candidate.Candidate, "can_pair_with", ("self", "other")),
    (aioice.ice.StunProtocol, "datagram_received", ("self", "data", "addr")),
]
ORIGINALS: dict[tuple[object, str], object] = {
    (aioice.ice, "get_host_addresses"): _original_get_host_addresses,
    (aioice.candidate.Candidate, "can_pair_with"): _original_can_pair_with,
    (aioice.ice.StunProtocol, "datagram_received"): _original_datagram_received,
}


def check() -> list[str]:
    """Problems with the aioice internals these hooks use; empty when all is where it was."""
    problems = []
    if "get_host_addresses(" not in inspect.getsource(aioice.ice.Connection.gather_candidates):
        problems.append("aioice Connection.gather_candidates no longer calls get_host_addresses")
    if ".can_pair_with(" not in inspect.getsource(aioice.ice.Connection._pair_remote_candidate):
        problems.append("aioice no longer pairs remote candidates through Candidate.can_pair_with")
    if "_network_host" not in inspect.getsource(aioice.candidate.Candidate):
        problems.append("aioice Candidate._network_host is gone")
    if "protocol.local_candidate = Candidate(" not in inspect.getsource(aioice.ice):
        problems.append("aioice no longer sets StunProtocol.local_candidate")
    return problems
