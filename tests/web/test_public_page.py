"""The public page /governor: content, JSON, and no secrets."""

from __future__ import annotations

import json

from tahoe_governor.status import private_dict, public_dict
from tests.web.controls_double import FRIEND_TUBID, PARENTS_TUBID, SECRETS
from tests.web.web_client import TOKEN, GovernorTestCase


class PublicPageTests(GovernorTestCase):
    def test_html_shows_jobs_counts_and_peers(self) -> None:
        """The page names each job with its state and counts, and each peer with rate and cap."""
        response = self.get("/governor")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.header("content-type"), "text/html; charset=utf-8")
        text = response.text
        self.assertIn('data-job="photos"', text)
        self.assertIn('data-state="running"', text)
        self.assertIn('data-state="waiting"', text)
        self.assertIn("1200 seen, 300 uploaded, 850 reused, 3 skipped, 1 failed", text)
        self.assertIn("2.9 GB done of about 5 GB", text)
        self.assertIn("24 kB/s (cap 25 kB/s)", text)
        self.assertIn("7 h 17 min", text)  # the ETA, 26 250 s
        self.assertIn("(6 d ago)", text)  # last completed
        self.assertIn("(in 5 h)", text)  # the mail job's next start
        self.assertIn("parents", text)
        self.assertIn("24.5 kB/s / 25 kB/s", text)  # parents: rate / cap up
        self.assertIn("40 kB/s / unlimited", text)
        self.assertIn(PARENTS_TUBID[:8], text)

    def test_readable_on_a_phone_and_refreshing(self) -> None:
        """A viewport meta, a meta refresh, and an inline SVG chart per peers and jobs."""
        text = self.get("/governor").text
        self.assertIn('name="viewport" content="width=device-width, initial-scale=1"', text)
        self.assertIn('http-equiv="refresh" content="10"', text)
        self.assertEqual(text.count("<svg"), 2)
        self.assertNotIn("<script", text)
        self.assertNotIn("&amp;", text.split("<body>")[0])  # the style sheet is not mangled

    def test_trailing_slash_is_the_same_page(self) -> None:
        """/governor/ serves the public page too."""
        self.assertEqual(self.get("/governor/").text, self.get("/governor").text)

    def test_json_is_the_public_dict(self) -> None:
        """?t=json is public_dict of the snapshot, infinite caps as null."""
        response = self.get("/governor?t=json")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.header("content-type"), "application/json; charset=utf-8")
        data = response.json()
        self.assertEqual(data, json.loads(json.dumps(public_dict(self.controls.status()))))
        self.assertEqual([j["name"] for j in data["jobs"]], ["photos", "mail"])
        self.assertIsNone(data["jobs"][1]["limit_bytes_per_second"])
        self.assertEqual(self.get("/governor/?t=json").json(), data)

    def test_no_secret_on_the_public_page_or_json(self) -> None:
        """No capability, local path, token or CSRF token, nor any control, is public."""
        for path in ("/governor", "/governor/", "/governor?t=json"):
            text = self.get(path).text
            for secret in SECRETS + (TOKEN, "csrf", "<form", "private_current_paths",
                                     "latest_snapshot_cap"):
                self.assertNotIn(secret, text, f"{secret!r} on {path}")

    def test_overrides_in_force_are_private(self) -> None:
        """The owner's live overrides (selectors and rates) are on the private JSON only."""
        self.controls.set_limit("job", "photos", "up", "123kbps")
        public = self.get("/governor?t=json").json()
        self.assertNotIn("overrides", public)
        self.assertNotIn("123kbps", json.dumps(public))
        self.assertIn("overrides", private_dict(self.controls.status()))

    def test_unknown_format_is_refused(self) -> None:
        """?t=xml gets 400 naming what is accepted."""
        response = self.get("/governor?t=xml")
        self.assertEqual(response.code, 400)
        self.assertIn("expected t=json or no t", response.text)

    def test_unknown_paths_are_404_without_echo(self) -> None:
        """Unknown paths and wrong tokens get the same 404, which repeats nothing of the path."""
        for wrong in ("nosuchpage", TOKEN.upper(), TOKEN[:-1] + "a", TOKEN[:-1], TOKEN + "x",
                      "a" * 26, "%00"):
            for suffix in ("", "/", "/?t=json", "/pause"):
                response = self.get(f"/governor/{wrong}{suffix}")
                self.assertEqual(response.code, 404, wrong + suffix)
                self.assertIn("No such page.", response.text)
                self.assertNotIn(wrong, response.text)

    def test_post_to_the_public_page_is_refused(self) -> None:
        """The public page has no controls: POST is 405."""
        self.assertEqual(self.request("POST", "/governor", data=b"").code, 405)

    def test_chart_draws_the_sampled_rates(self) -> None:
        """After sampling, each peer (up and down) and each job has a line in the charts."""
        self.resource.history.startService()
        self.addCleanup(self.resource.history.stopService)
        for _ in range(10):
            self.clock.advance(5)
        text = self.get("/governor").text
        self.assertEqual(text.count("<polyline"), 2 * 2 + 2)
        self.assertIn("parents up: 24.5 kB/s", text)
        self.assertIn("friend down: 1.2 kB/s", text)
        self.assertIn("photos: 24 kB/s", text)
        self.assertNotIn("no samples yet", text)
        self.assertIn(FRIEND_TUBID[:8], text)

    def test_chart_without_samples_says_so(self) -> None:
        """Before the first sample the chart shows an empty frame and says so."""
        self.assertIn("no samples yet", self.get("/governor").text)

    def test_security_headers(self) -> None:
        """No referrer, no framing, no caching, no script on the public page."""
        response = self.get("/governor")
        self.assertEqual(response.header("referrer-policy"), "no-referrer")
        self.assertEqual(response.header("x-frame-options"), "DENY")
        self.assertIn("script-src 'none'", response.header("content-security-policy") or "")


class HostileNamesTests(GovernorTestCase):
    def test_names_from_peers_are_escaped(self) -> None:
        """Nicknames come from storage servers: markup in them is shown, never run."""
        hostile = '<script>alert("x")</script>'
        self.controls.peers = {hostile: PARENTS_TUBID, "friend": FRIEND_TUBID}
        self.resource.history.sample()
        for path in ("/governor", f"/governor/{TOKEN}/"):
            text = self.get(path).text
            self.assertNotIn(hostile, text)
            self.assertIn("&lt;script&gt;alert(\"x\")&lt;/script&gt;", text)
