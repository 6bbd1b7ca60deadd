"""Pages, JSON and /metrics rendered once per snapshot for all readers, never stale."""

from __future__ import annotations

import re
from unittest import mock

from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase

from tahoe_governor.status import GovernorStatus
from tahoe_governor.web import metrics, private_page, public_page
from tahoe_governor.web.metrics import metrics_resource
from tahoe_governor.web.rendered_once import RenderedOnce, fill_in, per_response_marker
from tests.web.web_client import TOKEN, GovernorTestCase

CSRF_INPUT = re.compile(r'name="csrf" value="([^"]+)"')
SCRIPT_NONCE = re.compile(r'<script nonce="([^"]+)"')


class SharedSnapshot:
    """Hands out one frozen snapshot until told to take a new one, as the node does
    within a meter tick."""

    def __init__(self, take: object) -> None:
        self._take = take
        self.snapshot: GovernorStatus = take()  # type: ignore[operator]

    def status(self) -> GovernorStatus:
        return self.snapshot

    def renew(self) -> None:
        self.snapshot = self._take()  # type: ignore[operator]


def test_rendered_once_reuses_an_equal_key_and_renders_a_different_one() -> None:
    """Equal keys (by value, not identity) share a rendering; another key renders anew."""
    renders: list[str] = []
    once: RenderedOnce[str] = RenderedOnce()

    def render(text: str) -> str:
        renders.append(text)
        return text

    assert once.get(("a", 1), lambda: render("A")) == "A"
    assert once.get(("a", 1), lambda: render("again")) == "A"
    assert once.get(("a", 2), lambda: render("B")) == "B"
    assert renders == ["A", "B"]


def test_fill_in_replaces_each_placeholder_everywhere() -> None:
    """Every occurrence of each marker gets its value; two markers never collide."""
    csrf, nonce = per_response_marker(), per_response_marker()
    assert csrf != nonce and csrf.replace("-", "").isalnum()
    body = f"<a v='{csrf}'/><b v='{csrf}'/><script n='{nonce}'>".encode()
    assert fill_in(body, {csrf: "t.1", nonce: "n-2"}) == b"<a v='t.1'/><b v='t.1'/><script n='n-2'>"


class PagesRenderedOnceTests(GovernorTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.shared = SharedSnapshot(self.controls.status)
        self.controls.status = self.shared.status  # type: ignore[method-assign]

    def count(self, module: object, name: str) -> mock.MagicMock:
        patcher = mock.patch.object(module, name, wraps=getattr(module, name))
        self.addCleanup(patcher.stop)
        return patcher.start()

    def test_public_page_and_json_are_rendered_once_per_snapshot(self) -> None:
        """Readers of one snapshot share one HTML and one JSON rendering; a new
        snapshot (or a new sample in the charts) is rendered again."""
        html = self.count(public_page, "html_bytes")
        json = self.count(public_page, "json_bytes")
        pages = {self.get("/governor").text for _ in range(5)}
        answers = {self.get("/governor?t=json").text for _ in range(5)}
        self.assertEqual((len(pages), len(answers)), (1, 1))
        self.assertEqual((html.call_count, json.call_count), (1, 1))
        self.resource.history.sample()
        self.get("/governor")
        self.assertEqual(html.call_count, 2)
        self.controls.jobs["photos"].state = "paused"
        self.shared.renew()
        self.assertIn('data-state="paused"', self.get("/governor").text)
        self.assertIn('"paused"', self.get("/governor?t=json").text)
        self.assertEqual((html.call_count, json.call_count), (3, 2))

    def test_private_page_is_rendered_once_with_a_token_and_nonce_per_response(self) -> None:
        """One rendering serves every reader, yet each response carries its own CSRF
        token (valid for a control) and its own script nonce (the one its header allows)."""
        html = self.count(private_page, "html_bytes")
        seen = []
        for _ in range(3):
            response = self.get(f"/governor/{TOKEN}/")
            tokens = set(CSRF_INPUT.findall(response.text))
            (nonce,) = SCRIPT_NONCE.findall(response.text)
            self.assertEqual(len(tokens), 1)
            self.assertIn(f"'nonce-{nonce}'", response.header("content-security-policy") or "")
            self.assertNotIn("per-response-", response.text)
            seen.append((tokens.pop(), nonce))
        self.assertEqual(html.call_count, 1)
        self.assertEqual(len({token for token, _ in seen}), 3)
        self.assertEqual(len({nonce for _, nonce in seen}), 3)
        for token, _ in seen:
            self.assertEqual(self.post_form("pause", {"job": "photos"}, csrf=token).code, 303)

    def test_private_json_is_rendered_once_with_a_token_per_response(self) -> None:
        """The private JSON shares its rendering too; each answer has a fresh CSRF token."""
        json = self.count(private_page, "json_bytes")
        answers = [self.get(f"/governor/{TOKEN}/?t=json").json() for _ in range(3)]
        self.assertEqual(json.call_count, 1)
        self.assertEqual(len({a.pop("csrf") for a in answers}), 3)
        self.assertEqual(answers[0], answers[2])


class NeverStaleTests(GovernorTestCase):
    def test_a_snapshot_changed_at_the_same_instant_is_never_served_stale(self) -> None:
        """The rendering is keyed by the snapshot's value, not by the clock: a job
        paused without time passing shows at once on every page and in /metrics."""
        resource = metrics_resource(self.controls.status)
        stub = StubTreq(resource)
        before = self.get("/governor").text, self.get(f"/governor/{TOKEN}/").text
        scrape = self.successResultOf(self.successResultOf(
            stub.get("http://node.example/metrics")).text())
        self.controls.pause("photos")  # the double changes; its clock does not move
        after = self.get("/governor").text, self.get(f"/governor/{TOKEN}/").text
        for old, new in zip(before, after, strict=True):
            self.assertNotIn('data-state="paused"', old)
            self.assertIn('data-state="paused"', new)
        rescrape = self.successResultOf(self.successResultOf(
            stub.get("http://node.example/metrics")).text())
        state = 'tahoe_governor_job_state{job="photos",state="paused"}'
        self.assertIn(f"{state} 0.0", scrape)
        self.assertIn(f"{state} 1.0", rescrape)


class MetricsRenderedOnceTests(SynchronousTestCase):
    def test_scrapes_of_one_snapshot_share_one_encoding_per_format(self) -> None:
        """Scrapers of one snapshot get one encoding per format; a new snapshot is new."""
        from tests.web.controls_double import InMemoryControls

        controls = InMemoryControls()
        shared = SharedSnapshot(controls.status)
        collected = mock.patch.object(metrics._OneSnapshot, "collect", autospec=True,
                                      side_effect=metrics._OneSnapshot.collect)
        calls = collected.start()
        self.addCleanup(collected.stop)
        stub = StubTreq(metrics_resource(shared.status))

        def scrape(accept: bytes = b"") -> str:
            response = self.successResultOf(stub.get(
                "http://node.example/metrics", headers={b"accept": [accept]} if accept else {}))
            return str(self.successResultOf(response.text()))

        texts = {scrape() for _ in range(4)}
        openmetrics = {scrape(b"application/openmetrics-text; version=1.0.0") for _ in range(2)}
        self.assertEqual((len(texts), len(openmetrics), calls.call_count), (1, 1, 2))
        controls.pause("photos")
        shared.renew()
        self.assertIn('tahoe_governor_job_state{job="photos",state="paused"} 1.0', scrape())
        self.assertEqual(calls.call_count, 3)
