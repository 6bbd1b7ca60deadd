"""The owner's archive listing (/governor/<token>/archives), run history and recovery-sheet
reminder: on the private page and its JSON, never on the public page, its JSON or /metrics."""

from __future__ import annotations

from tahoe_governor.web.metrics import metrics_resource
from tests.web.controls_double import PHOTOS_RUN
from tests.web.web_client import TOKEN, GovernorTestCase

LISTING = f"/governor/{TOKEN}/archives"
REMINDER = ("The recovery sheet has never been printed: run 'tahoe-governor recovery-sheet "
            "NODEDIR' and keep the sheet away from this machine")


class ArchiveListingTests(GovernorTestCase):
    def test_listing_of_a_job(self) -> None:
        """The listing is JSON: newest first, joined with the run that made each archive,
        with the rule's verdict and reasons."""
        response = self.get(LISTING + "?job=photos")
        self.assertEqual(response.code, 200)
        data = response.json()
        self.assertEqual((data["job"], data["keep_rule"]), ("photos", "1 last"))
        newest, older = data["archives"]
        self.assertEqual(newest["name"], "2026-11-12_01:46:40Z")
        self.assertTrue(newest["latest"] and newest["keep"])
        self.assertEqual(newest["run"]["files_seen"], PHOTOS_RUN.files_seen)
        self.assertEqual(newest["run"]["outcome"], "completed")
        self.assertEqual((older["run"], older["keep"]), (None, False))
        self.assertEqual(older["reasons"], ["no kind of 1 last keeps it"])

    def test_unknown_or_missing_job_is_refused_with_the_known_ones(self) -> None:
        """400 naming the jobs there are; no job at all says how to ask."""
        response = self.get(LISTING + "?job=photoz")
        self.assertEqual(response.code, 400)
        self.assertIn("unknown job 'photoz': expected one of photos, mail",
                      response.json()["error"])
        missing = self.get(LISTING)
        self.assertEqual(missing.code, 400)
        self.assertIn("?job=NAME", missing.json()["error"])

    def test_grid_failure_is_502_with_the_kind_only(self) -> None:
        """A grid that cannot be read: 502 naming the kind of error, never its message."""
        self.controls.grid_error = RuntimeError("URI:DIR2:secret-cap-in-a-message")
        response = self.get(LISTING + "?job=photos")
        self.assertEqual(response.code, 502)
        self.assertIn("RuntimeError", response.json()["error"])
        self.assertNotIn("URI:", response.text)

    def test_listing_is_only_behind_the_token(self) -> None:
        """The public tree has no archives page."""
        self.assertEqual(self.get("/governor/archives?job=photos").code, 404)

    def test_private_page_shows_last_runs_and_the_reminder(self) -> None:
        """The private page lists each job's last runs with their outcome, and the reminder
        while the recovery sheet has not been printed; its JSON carries both."""
        self.controls.recovery_sheet_reminder = REMINDER
        page = self.get(f"/governor/{TOKEN}/").text
        self.assertIn("Last runs", page)
        self.assertIn("completed", page)
        self.assertIn(PHOTOS_RUN.detail, page)
        self.assertIn("recovery sheet has never been printed", page)
        data = self.get(f"/governor/{TOKEN}/?t=json").json()
        self.assertEqual(data["recovery_sheet_reminder"], REMINDER)
        self.assertEqual(data["jobs"][0]["recent_runs"][0]["outcome"], "completed")
        self.controls.recovery_sheet_reminder = None
        self.assertNotIn("recovery sheet", self.get(f"/governor/{TOKEN}/").text)

    def test_public_views_show_neither_runs_nor_reminder(self) -> None:
        """Neither the public page, its JSON nor /metrics carry the reminder, the history's
        archive names or the run details."""
        self.controls.recovery_sheet_reminder = REMINDER
        self.resource.putChild(b"metrics", metrics_resource(self.controls.status))
        for path in ("/governor", "/governor?t=json", "/governor/metrics"):
            text = self.get(path).text
            self.assertEqual(self.get(path).code, 200, path)
            for secret in ("recovery", "recovery-sheet", PHOTOS_RUN.detail, "recent_runs"):
                self.assertNotIn(secret, text, path)
