"""The private page /governor/<token>/: details, JSON API, controls and every refusal."""

from __future__ import annotations

import re

from twisted.python import log

from tahoe_governor.status import private_dict
from tahoe_governor.web.access_tokens import CsrfTokens
from tahoe_governor.web.control_actions import MAX_BODY_BYTES, MAX_JSON_DEPTH
from tests.web.controls_double import (
    IN_FLIGHT_PATH,
    PARENTS_TUBID,
    PHOTOS_SNAPSHOT,
    PHOTOS_SOURCE,
    PHOTOS_TARGET,
)
from tests.web.web_client import TOKEN, GovernorTestCase

PRIVATE = f"/governor/{TOKEN}/"


class PrivatePageTests(GovernorTestCase):
    def test_page_shows_the_details_and_the_controls(self) -> None:
        """Sources, targets, snapshot caps, files in flight and a form per control."""
        response = self.get(PRIVATE)
        self.assertEqual(response.code, 200)
        text = response.text
        for detail in (PHOTOS_SOURCE, PHOTOS_TARGET, PHOTOS_SNAPSHOT, IN_FLIGHT_PATH,
                       PARENTS_TUBID):
            self.assertIn(detail, text)
        for action in ("pause", "start", "limit"):
            self.assertIn(f'action="{action}"', text)
        self.assertIn('formaction="clear"', text)
        csrf_values = re.findall(r'name="csrf" value="([^"]+)"', text)
        self.assertTrue(csrf_values)
        self.assertTrue(all(CsrfTokens(TOKEN).check(v, self.clock.seconds())
                            for v in csrf_values))
        self.assertNotIn(TOKEN, text)  # every link and action is relative

    def test_job_settings_forms_show_the_values_in_force_and_what_is_overridden(self) -> None:
        """Each job has a form per setting, filled with the value in force; an overridden
        one offers "Back to tahoe.cfg", the others do not."""
        self.post_form("setting", {"job": "photos", "setting": "allowed_times",
                                   "value": "0100-0500"})
        text = self.get(PRIVATE).text
        self.assertEqual(text.count('action="setting"'), 3 * 2)
        self.assertIn('value="0100-0500"', text)
        self.assertIn('value="1week"', text)
        self.assertIn('value="25%"', text)
        self.assertEqual(text.count('formaction="unset"'), 1)
        self.assertIn("job photos allowed_times = 0100-0500", text)

    def test_script_runs_only_with_the_pages_nonce(self) -> None:
        """The refresh script carries the nonce the Content-Security-Policy allows."""
        response = self.get(PRIVATE)
        csp = response.header("content-security-policy") or ""
        nonce = re.search(r"'nonce-([^']+)'", csp)
        assert nonce is not None
        self.assertIn(f'<script nonce="{nonce.group(1)}">', response.text)
        self.assertNotIn("&amp;", response.text.split("<script")[1])
        self.assertEqual(response.header("referrer-policy"), "no-referrer")
        self.assertEqual(response.header("cache-control"), "no-store")

    def test_without_slash_redirects_to_the_slash(self) -> None:
        """/governor/<token> sends the browser on to /governor/<token>/ (relative links)."""
        response = self.get(f"/governor/{TOKEN}")
        self.assertEqual(response.code, 301)
        self.assertEqual(response.header("location"), f"{TOKEN}/")

    def test_json_is_the_private_dict_and_a_csrf_token(self) -> None:
        """?t=json: private_dict of the snapshot plus a CSRF token for the command."""
        data = self.get(PRIVATE + "?t=json").json()
        csrf = data.pop("csrf")
        self.assertTrue(CsrfTokens(TOKEN).check(csrf, self.clock.seconds()))
        expected = private_dict(self.controls.status())
        self.assertEqual(data["jobs"][0]["latest_snapshot_cap"], PHOTOS_SNAPSHOT)
        self.assertEqual(data["jobs"][0]["target"], expected["jobs"][0]["target"])
        self.assertEqual(set(data), set(expected))

    def test_unknown_format_is_refused(self) -> None:
        """?t=yaml gets 400."""
        self.assertEqual(self.get(PRIVATE + "?t=yaml").code, 400)

    def test_overrides_are_listed_with_a_clear_button(self) -> None:
        """Each override in force is shown with a form that clears it."""
        self.controls.set_limit("peer", "parents", "up", "100kbps")
        text = self.get(PRIVATE).text
        self.assertIn("<code>peer parents up = 100kbps</code>", text)
        self.assertIn('<input type="hidden" name="scope" value="peer" />', text)


class ControlTests(GovernorTestCase):
    def test_every_control_from_a_form_redirects_back(self) -> None:
        """Each browser POST does its work and answers 303 to the private page."""
        cases = [
            ("pause", {"job": "photos"}, ("pause", "photos")),
            ("resume", {"job": "photos"}, ("resume", "photos")),
            ("start", {"job": "mail"}, ("run_now", "mail", False)),
            ("start", {"job": "mail", "force": "on"}, ("run_now", "mail", True)),
            ("limit", {"scope": "peer", "name": "parents", "direction": "up",
                       "rate": "100kbps"}, ("set_limit", "peer", "parents", "up", "100kbps")),
            ("limit", {"scope": "job", "name": "photos", "direction": "up", "rate": "1MB/s"},
             ("set_limit", "job", "photos", "up", "1MB/s")),
            ("limit", {"scope": "node", "name": "ignored for node", "direction": "down",
                       "rate": "unlimited"}, ("set_limit", "node", "", "down", "unlimited")),
            ("clear", {"scope": "peer", "name": "parents", "direction": "up"},
             ("set_limit", "peer", "parents", "up", None)),
            ("setting", {"job": "mail", "setting": "allowed_times", "value": "0000-2400"},
             ("set_job_setting", "mail", "allowed_times", "0000-2400")),
            ("unset", {"job": "mail", "setting": "allowed_times"},
             ("set_job_setting", "mail", "allowed_times", None)),
            ("reload", {}, ("reload",)),
        ]
        for action, fields, call in cases:
            response = self.post_form(action, fields)
            self.assertEqual(response.code, 303, (action, fields, response.text))
            self.assertEqual(response.header("location"), "./")
            self.assertEqual(self.controls.calls[-1], call)
        self.assertEqual(len(self.controls.calls), len(cases))

    def test_pause_shows_on_the_public_json(self) -> None:
        """Pausing from the private page is what the public JSON then says."""
        self.post_form("pause", {"job": "photos"})
        jobs = {j["name"]: j for j in self.get("/governor?t=json").json()["jobs"]}
        self.assertEqual(jobs["photos"]["state"], "paused")
        page = self.get(PRIVATE).text
        self.assertIn('action="resume"', page)

    def test_every_control_as_json(self) -> None:
        """A JSON POST gets a JSON answer with the message and the new status."""
        response = self.post_json("pause", {"job": "mail"})
        self.assertEqual(response.code, 200)
        data = response.json()
        self.assertEqual((data["ok"], data["action"], data["message"]),
                         (True, "pause", "Paused job 'mail'."))
        self.assertEqual(data["status"]["jobs"][1]["state"], "paused")
        response = self.post_json("start", {"job": "photos", "force": True})
        self.assertEqual(response.code, 200)
        self.assertEqual(self.controls.calls[-1], ("run_now", "photos", True))
        response = self.post_json("limit", {"scope": "node", "direction": "up", "rate": "1Mbps"})
        self.assertEqual(response.json()["status"]["link"]["node_limit_up"], 125_000.0)
        response = self.post_json("clear", {"scope": "node", "direction": "up"})
        self.assertEqual(response.json()["status"]["overrides"], [])
        response = self.post_json("resume", {"job": "mail"})
        self.assertEqual(response.json()["status"]["jobs"][1]["state"], "waiting")

    def test_csrf_token_in_a_header(self) -> None:
        """The command may send the CSRF token as X-Governor-CSRF."""
        response = self.request(
            "POST", PRIVATE + "pause?t=json", data=b"job=photos",
            headers={"Content-Type": ["application/x-www-form-urlencoded"],
                     "X-Governor-CSRF": [self.csrf()]})
        self.assertEqual(response.code, 200)
        self.assertTrue(response.json()["ok"])

    def test_get_on_a_control_is_405_and_changes_nothing(self) -> None:
        """A control is never carried out by GET (or HEAD, PUT, DELETE)."""
        for action in ("pause", "resume", "start", "limit", "clear"):
            for method in ("GET", "HEAD", "PUT", "DELETE"):
                response = self.request(method, PRIVATE + f"{action}?job=photos&csrf={self.csrf()}")
                self.assertEqual(response.code, 405, (action, method))
                self.assertEqual(response.header("allow"), "POST")
        self.assertIn("is a control: expected a POST", self.get(PRIVATE + "pause").text)
        self.assertEqual(self.controls.calls, [])

    def test_missing_forged_or_expired_csrf_is_403_and_changes_nothing(self) -> None:
        """Without a valid CSRF token of this node's private page, no control runs."""
        fresh = self.csrf()
        forged = fresh[:-3] + ("aaa" if not fresh.endswith("aaa") else "bbb")
        foreign = CsrfTokens("z" * 26).issue(self.clock.seconds())
        for csrf in (None, "", "not-a-token", forged, foreign):
            response = self.post_form("pause", {"job": "photos"}, csrf=csrf)
            self.assertEqual(response.code, 403, csrf)
            self.assertIn("CSRF token", response.text)
            response = self.post_json("pause", {"job": "photos"}, csrf=csrf)
            self.assertEqual(response.code, 403, csrf)
            self.assertIn("CSRF", response.json()["error"])
        self.clock.advance(25 * 3600)  # the fresh one expires after a day
        self.assertEqual(self.post_form("pause", {"job": "photos"}, csrf=fresh).code, 403)
        self.assertEqual(self.post_json("pause", {"job": "photos"}, csrf=12345).code, 403)
        self.assertEqual(self.controls.calls, [])
        self.assertEqual(self.controls.jobs["photos"].state, "running")

    def test_control_errors_are_400_naming_what_was_expected(self) -> None:
        """Bad fields and ControlErrors are 400 with a message; nothing changes."""
        cases = [
            ("pause", {"job": "videos"}, "unknown job 'videos': expected one of photos, mail"),
            ("pause", {}, "Missing field 'job': expected the name of a job."),
            ("start", {"job": "photos", "force": "maybe"},
             "Field 'force' is 'maybe': expected true or false."),
            ("limit", {"scope": "peer", "name": "parents", "direction": "up", "rate": "fast"},
             "rate 'fast': expected a rate above zero"),
            ("limit", {"scope": "peer", "name": "parents", "direction": "up", "rate": "200kbit"},
             "a rate above zero"),
            ("limit", {"scope": "job", "name": "photos", "direction": "down", "rate": "1MB/s"},
             "direction must be 'up'"),
            ("limit", {"scope": "job", "name": "videos", "direction": "up", "rate": "1MB/s"},
             "unknown job 'videos'"),
            ("limit", {"scope": "peer", "name": "neighbour", "direction": "up", "rate": "1MB/s"},
             "unknown peer 'neighbour'"),
            ("limit", {"scope": "planet", "name": "x", "direction": "up", "rate": "1MB/s"},
             "Field 'scope' is 'planet': expected 'node' or 'peer' or 'job'."),
            ("limit", {"scope": "peer", "direction": "up", "rate": "1MB/s"},
             "Missing field 'name': expected a peer selector"),
            ("limit", {"scope": "node", "direction": "sideways", "rate": "1MB/s"},
             "Field 'direction' is 'sideways': expected 'up' or 'down'."),
            ("limit", {"scope": "node", "direction": "up"}, "Missing field 'rate'"),
            ("clear", {"scope": "node", "direction": "up"}, "no override of node up to clear"),
            ("setting", {"job": "mail", "setting": "allowed_times", "value": "tonight"},
             "allowed_times = 'tonight': expected"),
            ("setting", {"job": "mail", "setting": "weight", "value": "2"},
             "Field 'setting' is 'weight': expected 'allowed_times' or 'frequency' or 'cpu'."),
            ("setting", {"job": "mail", "setting": "cpu"}, "Missing field 'value'"),
            ("unset", {"job": "mail", "setting": "cpu"}, "no override of job 'mail' cpu"),
        ]
        for action, fields, message in cases:
            response = self.post_form(action, fields)
            self.assertEqual(response.code, 400, (action, fields))
            self.assertIn(message, response.text)
            response = self.post_json(action, fields)
            self.assertEqual(response.code, 400, (action, fields))
            self.assertIn(message, response.json()["error"])
        self.assertEqual(self.controls.calls, [])

    def test_unreadable_bodies_are_refused(self) -> None:
        """Other body types (415), huge bodies (413), bad JSON and repeated fields (400)."""
        csrf = self.csrf()
        cases = [
            ("text/plain", b"job=photos", 415),
            ("application/x-www-form-urlencoded",
             b"job=photos&csrf=" + csrf.encode() + b"&pad=" + b"x" * MAX_BODY_BYTES, 413),
            ("application/json", b"{not json", 400),
            ("application/json", b'["photos"]', 400),
            ("application/x-www-form-urlencoded",
             b"job=photos&job=mail&csrf=" + csrf.encode(), 400),
        ]
        for content_type, body, code in cases:
            response = self.request("POST", PRIVATE + "pause", data=body,
                                    headers={"Content-Type": [content_type]})
            self.assertEqual(response.code, code, (content_type, body[:40]))
        self.assertEqual(self.controls.calls, [])

    def test_deeply_nested_json_is_400_not_500(self) -> None:
        """A JSON body nested past the limit (or past Python's recursion limit) is refused
        as malformed, before the controls are called."""
        csrf = self.csrf()
        for depth in (MAX_JSON_DEPTH + 1, 30_000):
            body = (b'{"csrf": "' + csrf.encode() + b'", "job": ' + b"[" * depth
                    + b"]" * depth + b"}")
            response = self.request("POST", PRIVATE + "pause", data=body,
                                    headers={"Content-Type": ["application/json"]})
            self.assertEqual(response.code, 400, depth)
            self.assertIn(f"nested more than {MAX_JSON_DEPTH} levels deep", response.text)
        response = self.post_json("pause", {"job": {"name": "photos"}})
        self.assertEqual((response.code, response.json()["error"]), (
            400, "Field 'job' is a JSON object: expected the name of a job (a string)."))
        self.assertEqual(self.controls.calls, [])

    def test_names_from_a_request_are_logged_escaped(self) -> None:
        """A selector with a newline and an escape sequence cannot forge or colour a log
        line: the log (and the answer) carry it escaped."""
        hostile = "evil\x1b[31m\nFORGED LINE"
        self.controls.peers = {hostile: PARENTS_TUBID}
        logged: list[dict] = []
        log.addObserver(logged.append)
        self.addCleanup(log.removeObserver, logged.append)
        response = self.post_json("limit", {"scope": "peer", "name": hostile,
                                            "direction": "up", "rate": "100kbps"})
        self.assertEqual(response.code, 200)
        lines = [" ".join(event["message"]) for event in logged if event.get("message")]
        self.assertIn("tahoe-governor: Set peer evil\\x1b[31m\\x0aFORGED LINE up to 100kbps.",
                      lines)
        self.assertFalse(any("\x1b" in line or "\n" in line for line in lines))

    def test_unknown_action_is_404(self) -> None:
        """Only the five controls exist under the private URL."""
        self.assertEqual(self.post_form("delete", {"job": "photos"}).code, 404)
        self.assertEqual(self.controls.calls, [])

    def test_wrong_token_cannot_post(self) -> None:
        """A control under a wrong token is 404, even with a valid CSRF token."""
        wrong = TOKEN[:-1] + ("a" if TOKEN[-1] != "a" else "b")
        response = self.post_form("pause", {"job": "photos"},
                                  path=f"/governor/{wrong}/pause")
        self.assertEqual(response.code, 404)
        self.assertEqual(self.controls.calls, [])
