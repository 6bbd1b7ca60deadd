"""Names a storage server chooses for itself reach every display escaped, and never break one.

A nickname is announced by the server, so a member of the grid can put an
escape sequence, a newline, a bidi override or something that is not UTF-8 in
it. The command, both pages and ``/metrics`` show it escaped by the one
function :func:`~tahoe_governor.status.display_names.display_name`; the charts
keep one line per TubID even when two servers announce the same nickname.
"""

from __future__ import annotations

import io

import attrs
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tahoe_governor.cli.status import run_status
from tahoe_governor.status.display_names import clean_text, display_name
from tahoe_governor.web.metrics import GovernorCollector
from tahoe_governor.web.rate_chart import lines_from_samples
from tahoe_governor.web.rate_history import sample_of
from tests.cli.stub_node import StubNode
from tests.web.controls_double import FRIEND_TUBID, PARENTS_TUBID
from tests.web.status_examples import DSL_TUBID, FAST_TUBID, example_status
from tests.web.web_client import TOKEN, GovernorTestCase

HOSTILE = "evil\x1b[2J\nrm -rf\u202egnp.exe\udcff"
"""ESC (clear screen), a newline, a right-to-left override and a lone surrogate
(what undecodable bytes become in a JSON announcement)."""
SHOWN = "evil\\x1b[2J\\x0arm -rf\\u202egnp.exe\\udcff"
RAW = ("\x1b", "\u202e", "\udcff")


def test_display_name_escapes_what_could_act_and_keeps_the_rest() -> None:
    """Controls, format characters, separators and undecodable bytes become escapes;
    letters of any script, spaces and punctuation stay as they are."""
    assert display_name(HOSTILE) == SHOWN
    assert display_name(b"caf\xc3\xa9 \xff\x07") == "café \\xff\\x07"
    assert display_name("Ωmega büro 東京 #2") == "Ωmega büro 東京 #2"
    assert display_name("a\u2028b\U000e0041c") == "a\\u2028b\\U000e0041c"
    assert display_name(None) == ""
    assert clean_text(b"\xff") == "\\xff"
    assert clean_text("x\udcff").encode("utf-8") == b"x\\udcff"


class HostileNicknamePageTests(GovernorTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.controls.peers = {HOSTILE: PARENTS_TUBID, "friend": FRIEND_TUBID}

    def test_public_page_and_json(self) -> None:
        """The public page shows the nickname escaped; its JSON still answers."""
        response = self.get("/governor")
        self.assertEqual(response.code, 200)
        self.assertIn(SHOWN, response.text)
        for raw in RAW[:2]:
            self.assertNotIn(raw, response.text)
        self.assertEqual(self.get("/governor?t=json").code, 200)

    def test_private_page_and_json(self) -> None:
        """The private page shows it escaped and offers the TubID, not the raw name,
        as the peer to override."""
        response = self.get(f"/governor/{TOKEN}/")
        self.assertEqual(response.code, 200)
        self.assertIn(SHOWN, response.text)
        for raw in RAW[:2]:
            self.assertNotIn(raw, response.text)
        self.assertIn(f'<option value="{PARENTS_TUBID}"', response.text)
        self.assertEqual(self.get(f"/governor/{TOKEN}/?t=json").code, 200)

    def test_metrics_label_values(self) -> None:
        """/metrics serves the nickname label escaped, and parses back."""
        registry = CollectorRegistry()
        registry.register(GovernorCollector(self.controls.status))
        text = generate_latest(registry).decode("utf-8")
        nicknames = {
            sample.labels["nickname"]
            for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.labels.get("peer") == PARENTS_TUBID
        }
        self.assertEqual(nicknames, {SHOWN})


def test_status_command_escapes_the_nickname(tmp_path) -> None:
    """`tahoe-governor status` never writes a raw escape or override to the terminal."""
    node = StubNode(tmp_path / "node")
    node.controls.peers = {HOSTILE: PARENTS_TUBID, "friend": FRIEND_TUBID}
    out, err = io.StringIO(), io.StringIO()
    assert run_status(node.nodedir, out, err, http=node.http) == 0
    assert SHOWN in out.getvalue()
    for raw in RAW:
        assert raw not in out.getvalue()


def test_two_peers_with_one_nickname_keep_two_chart_lines() -> None:
    """Charts are keyed by TubID: a server announcing another's nickname adds its own
    line, labelled apart by its TubID, instead of overwriting the other."""
    status = example_status()
    status = attrs.evolve(status, peers=tuple(
        attrs.evolve(p, nickname="parents") for p in status.peers))
    samples = [sample_of(status, status.at - 5), sample_of(status, status.at)]
    peer_lines, _ = lines_from_samples(samples)
    assert sorted(line.label for line in peer_lines) == sorted(
        f"parents ({tubid[:8]}) {direction}"
        for tubid in (DSL_TUBID, FAST_TUBID) for direction in ("up", "down"))
    rates = {line.label: [rate for _, rate in line.points] for line in peer_lines}
    assert rates[f"parents ({DSL_TUBID[:8]}) up"] == [24_100.0, 24_100.0]
    assert rates[f"parents ({FAST_TUBID[:8]}) up"] == [61_000.0, 61_000.0]
