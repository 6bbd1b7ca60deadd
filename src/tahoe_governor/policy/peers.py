"""Peer selectors of ``peer.<selector>.*`` and their resolution to TubIDs.

A selector names a storage server three ways: its Foolscap TubID (32
lowercase base32 characters), its Tahoe server id (``v0-`` and 52 base32
characters), or its nickname. A TubID is usable at once; a server id or a
nickname is resolved when the peer is known (announced or listed in
``servers.yaml``), and a nickname must then name exactly one known peer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

import attrs

_TUBID = re.compile(r"[a-z2-7]{32}")
_SERVER_ID = re.compile(r"v0-[a-z2-7]{52}")

SelectorKind = Literal["tubid", "server_id", "nickname"]


@attrs.frozen
class PeerSelector:
    """What a ``peer.<selector>`` key names; ``kind`` follows from the text."""

    text: str
    kind: SelectorKind

    @classmethod
    def parse(cls, text: str) -> PeerSelector:
        if _TUBID.fullmatch(text):
            return cls(text, "tubid")
        if _SERVER_ID.fullmatch(text):
            return cls(text, "server_id")
        return cls(text, "nickname")

    def __str__(self) -> str:
        return self.text


@attrs.frozen
class KnownPeer:
    """A storage server the node knows: its TubID, server id and nickname."""

    tubid: str
    server_id: str | None = None
    nickname: str | None = None


@attrs.frozen
class PeerResolution:
    """The TubID a selector names, or ``problem`` saying why there is none (yet)."""

    selector: PeerSelector
    tubid: str | None
    problem: str | None = None


def resolve_selector(selector: PeerSelector, known: Iterable[KnownPeer]) -> PeerResolution:
    """Map ``selector`` to a TubID using the peers known now."""
    peers = list(known)
    if selector.kind == "tubid":
        return PeerResolution(selector, selector.text)
    if selector.kind == "server_id":
        tubids = sorted({p.tubid for p in peers if p.server_id == selector.text})
        what = f"server id {selector.text}"
    else:
        tubids = sorted({p.tubid for p in peers if p.nickname == selector.text})
        what = f"nickname {selector.text!r}"
    if len(tubids) == 1:
        return PeerResolution(selector, tubids[0])
    if not tubids:
        return PeerResolution(selector, None, f"no known peer has {what} (not connected yet?)")
    listed = ", ".join(tubids)
    return PeerResolution(
        selector, None, f"{what} is ambiguous: peers {listed} share it; use a TubID instead"
    )


_FURL_TUBID = re.compile(r"pb://([a-z2-7]{32})@")


def peers_from_servers_yaml(data: object) -> list[KnownPeer]:
    """The peers listed in the parsed ``NODEDIR/private/servers.yaml`` (static servers).

    Entries without a Foolscap fURL are skipped: only Foolscap peers are shaped.
    """
    storage = data.get("storage") if isinstance(data, dict) else None
    if not isinstance(storage, dict):
        return []
    peers = []
    for server_id, entry in storage.items():
        announcement = entry.get("ann") if isinstance(entry, dict) else None
        if not isinstance(announcement, dict):
            continue
        furl = announcement.get("anonymous-storage-FURL")
        match = _FURL_TUBID.match(furl) if isinstance(furl, str) else None
        if match is None:
            continue
        nickname = announcement.get("nickname")
        peers.append(
            KnownPeer(
                tubid=match.group(1),
                server_id=str(server_id),
                nickname=nickname if isinstance(nickname, str) else None,
            )
        )
    return peers
