"""Peer selectors of ``peer.<selector>.*`` and their resolution to TubIDs.

A selector names a storage server three ways: its Foolscap TubID (32
lowercase base32 characters), its Tahoe server id (``v0-`` and 52 base32
characters), or its nickname. A TubID is usable at once; a server id or a
nickname is resolved when the peer is known (announced or listed in
``servers.yaml``).

Storage servers choose their own nicknames, so a nickname may name several
servers: then it names them all, and every one of them is capped. Another
member of the grid announcing the nickname of a capped server therefore adds
a capped peer; it can never lift the cap (a TubID is the only name nobody
else can take, which ``check`` recommends).
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
    """The TubIDs a selector names now; ``problem`` says why there are none (yet),
    ``note`` what the user should know of a resolution (several peers share a nickname)."""

    selector: PeerSelector
    tubids: tuple[str, ...]
    problem: str | None = None
    note: str | None = None


def resolve_selector(selector: PeerSelector, known: Iterable[KnownPeer]) -> PeerResolution:
    """Map ``selector`` to the TubIDs it names among the peers known now."""
    peers = list(known)
    if selector.kind == "tubid":
        return PeerResolution(selector, (selector.text,))
    if selector.kind == "server_id":
        tubids = tuple(sorted({p.tubid for p in peers if p.server_id == selector.text}))
        what = f"server id {selector.text}"
    else:
        tubids = tuple(sorted({p.tubid for p in peers if p.nickname == selector.text}))
        what = f"nickname {selector.text!r}"
    if not tubids:
        return PeerResolution(selector, (), f"no known peer has {what} (not connected yet?)")
    if len(tubids) == 1:
        return PeerResolution(selector, tubids)
    return PeerResolution(
        selector, tubids,
        note=(f"{what} is announced by {len(tubids)} peers ({', '.join(tubids)}): all are "
              "capped; name the one you mean by its TubID"),
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
