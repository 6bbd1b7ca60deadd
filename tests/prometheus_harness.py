"""A real Prometheus server for tests, and a check that every Grafana query returns data.

:class:`PrometheusServer` runs Debian's ``prometheus`` binary (``.ci/run``
installs it) on 127.0.0.1 with its own temporary storage and a scrape config
polling one loopback target every second; never the system service. Its
methods block (they poll Prometheus's HTTP API with a bound), so:

- plain pytest tests use the :func:`prometheus_server` fixture, with the
  scraped server running in another thread or process;
- ``twisted.trial`` tests whose scraped server runs in the test's reactor
  create a :class:`PrometheusServer` themselves, ``addCleanup(server.stop)``,
  and call the blocking methods through ``twisted.internet.threads.deferToThread``
  so the reactor keeps serving the scrapes meanwhile.

:func:`dashboard_queries` lists every target expression of a Grafana
dashboard and :func:`variable_queries` its template variables' value lists;
:func:`queries_without_data` evaluates them all (Grafana variables
substituted, see :func:`substitute_variables`) with ``/api/v1/query`` and
returns those that give no data or an error.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

PROMETHEUS_BINARY = os.environ.get("PROMETHEUS_BINARY", "/usr/bin/prometheus")
"""Debian's package puts the server here; ``PROMETHEUS_BINARY`` overrides it."""

JOB_NAME = "tahoe-governor"


class PrometheusError(Exception):
    """Prometheus did not start, did not scrape, or answered an error."""


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _loopback_target(url: str) -> tuple[str, str, str]:
    """``(scheme, host:port, path)`` of ``url``, which must be on a loopback address."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname is None or parts.port is None:
        raise ValueError(f"scrape target {url!r}: expected http://127.0.0.1:PORT/path")
    host = parts.hostname
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"scrape target {url!r}: only loopback addresses may be scraped")
    netloc = f"[{host}]:{parts.port}" if ":" in host else f"{host}:{parts.port}"
    return parts.scheme, netloc, parts.path or "/metrics"


class PrometheusServer:
    """One Prometheus process scraping ``target_url`` every ``scrape_interval``.

    ``scrape_job`` is a scrape config entry (e.g. the one shipped in
    ``grafana/prometheus-scrape.yml``) whose job name, interval, scheme, path
    and targets are replaced by this server's; by default it only sets
    ``honor_labels``. :meth:`start` launches the server; :meth:`stop` ends it
    and removes its directory (config, storage, log). ``timeout`` bounds every
    wait, in seconds.
    """

    def __init__(
        self,
        target_url: str,
        scrape_interval: str = "1s",
        binary: str = PROMETHEUS_BINARY,
        timeout: float = 30.0,
        scrape_job: Mapping[str, Any] | None = None,
    ) -> None:
        self.scheme, self.target, self.metrics_path = _loopback_target(target_url)
        self.scrape_interval = scrape_interval
        self.scrape_job = dict(scrape_job or {"honor_labels": True})
        self.binary = binary
        self.timeout = timeout
        self.directory: Path | None = None
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise PrometheusError("Prometheus is not started")
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Write the config and launch the server on a free loopback port."""
        if not os.access(self.binary, os.X_OK):
            raise PrometheusError(
                f"no Prometheus at {self.binary}: install Debian's 'prometheus' package "
                "(.ci/run does) or set PROMETHEUS_BINARY"
            )
        self.directory = Path(tempfile.mkdtemp(prefix="tahoe-governor-prometheus-"))
        config = self.directory / "prometheus.yml"
        config.write_text(self._config())
        self.port = _free_loopback_port()
        log = (self.directory / "prometheus.log").open("wb")
        try:
            self._process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
            )
        finally:
            log.close()

    def _config(self) -> str:
        # JSON is YAML: no YAML writer needed.
        return json.dumps(
            {
                "global": {
                    "scrape_interval": self.scrape_interval,
                    "scrape_timeout": self.scrape_interval,
                    "evaluation_interval": self.scrape_interval,
                },
                "scrape_configs": [
                    {
                        **self.scrape_job,
                        "job_name": JOB_NAME,
                        "scrape_interval": self.scrape_interval,
                        "scrape_timeout": self.scrape_interval,
                        "scheme": self.scheme,
                        "metrics_path": self.metrics_path,
                        "static_configs": [{"targets": [self.target]}],
                    }
                ],
            },
            indent=2,
        )

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server's own log, for error messages."""
        if self.directory is None or not (self.directory / "prometheus.log").exists():
            return ""
        text = (self.directory / "prometheus.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _poll(self, what: str, attempt: Callable[[], Any]) -> Any:
        """Call ``attempt`` until it returns something true, at most ``timeout`` seconds."""
        deadline = time.monotonic() + self.timeout
        last = None
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise PrometheusError(
                    f"Prometheus exited ({self._process.returncode}) while {what}:\n"
                    + self.log_tail()
                )
            try:
                result = attempt()
            except (OSError, ValueError, PrometheusError) as e:
                result, last = None, e
            if result:
                return result
            if time.monotonic() > deadline:
                raise PrometheusError(
                    f"gave up after {self.timeout} s {what} (last: {last!r}):\n" + self.log_tail()
                )
            time.sleep(0.1)

    def wait_ready(self) -> None:
        """Block until ``/-/ready`` answers 200."""

        def ready() -> bool:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as response:
                return bool(response.status == 200)

        self._poll("waiting for Prometheus to be ready", ready)

    def scrape_health(self) -> dict[str, Any]:
        """The target's entry from ``/api/v1/targets`` (``health``, ``lastError``, ...)."""
        data = self._api("targets", {"state": "active"})
        targets = data["activeTargets"]
        if len(targets) != 1:
            raise PrometheusError(f"expected one active target, got {targets!r}")
        return dict(targets[0])

    def wait_for_scrape(self, scrapes: int = 1) -> None:
        """Block until the target has been scraped successfully ``scrapes`` times
        (``up == 1`` in that many samples)."""

        def scraped() -> bool:
            health = self.scrape_health()
            if health.get("health") != "up":
                raise PrometheusError(f"target {health.get('health')}: {health.get('lastError')}")
            count = self.query(f'sum_over_time(up{{job="{JOB_NAME}"}}[1h])')
            return bool(count) and float(count[0]["value"][1]) >= scrapes

        self._poll(f"waiting for {scrapes} successful scrape(s) of {self.target}", scraped)

    def _api(self, path: str, params: Mapping[str, str]) -> Any:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body = json.load(response)
        except urllib.error.HTTPError as e:
            body = json.load(e)
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {dict(params)}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query now: the result as a list of series (a scalar or
        string result becomes one entry)."""
        data = self._api("query", {"query": expr})
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def stop(self) -> None:
        """End the process (SIGTERM, then SIGKILL after ``timeout``) and remove its directory."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(self.timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


@pytest.fixture
def prometheus_server() -> Iterator[Callable[..., PrometheusServer]]:
    """A factory: ``prometheus_server(target_url, scrapes=1)`` starts Prometheus
    scraping ``target_url`` (loopback only) every second, waits until it is
    ready and has scraped ``scrapes`` times successfully, and returns it.
    Every server started is stopped and its directory removed after the test."""
    started: list[PrometheusServer] = []

    def start(target_url: str, scrapes: int = 1, **options: Any) -> PrometheusServer:
        server = PrometheusServer(target_url, **options)
        started.append(server)
        server.start()
        server.wait_ready()
        server.wait_for_scrape(scrapes)
        return server

    yield start
    for server in started:
        server.stop()


# -- Grafana dashboards ---------------------------------------------------------


@attrs.frozen
class PanelQuery:
    """One target expression of one dashboard panel."""

    panel: str
    ref_id: str
    expr: str


def dashboard_queries(dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    """Every Prometheus target expression of every panel, rows' panels included."""
    out = []

    def walk(panels: list[Mapping[str, Any]]) -> None:
        for panel in panels:
            for target in panel.get("targets", []):
                title, ref_id = panel.get("title", ""), target.get("refId", "")
                out.append(PanelQuery(title, ref_id, target["expr"]))
            walk(panel.get("panels", []))

    walk(dashboard.get("panels", []))
    return out


GRAFANA_BUILTINS = {
    "__rate_interval": "15s",
    "__interval": "1s",
    "__interval_ms": "1000",
    "__range": "5m",
    "__range_s": "300",
    "__range_ms": "300000",
}
"""Grafana's own variables, valued as for a 5 minute view of a 1 s scrape."""

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)(?::\w+)?\]\]|\$(\w+)")


def substitute_variables(
    expr: str, dashboard: Mapping[str, Any], values: Mapping[str, str] | None = None
) -> str:
    """``expr`` with Grafana's variables replaced: built-ins from
    :data:`GRAFANA_BUILTINS`, template variables from ``values``, else ``.*``
    (what "All" means in a regex matcher). An unknown variable is an error."""
    values = dict(values or {})
    known = {v["name"] for v in dashboard.get("templating", {}).get("list", [])}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name in values:
            return values[name]
        if name in GRAFANA_BUILTINS:
            return GRAFANA_BUILTINS[name]
        if name in known:
            return ".*"
        raise ValueError(f"query {expr!r} uses ${name}, which the dashboard does not define")

    return _VARIABLE.sub(replace, expr)


_LABEL_VALUES = re.compile(r"label_values\((.+),\s*(\w+)\)", re.DOTALL)


def variable_queries(dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    """Each query variable's ``label_values(selector, label)`` as the PromQL that
    lists the same values, ``count by (label) (selector)``, named ``$variable``."""
    out = []
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable["query"]
        text = query["query"] if isinstance(query, Mapping) else query
        match = _LABEL_VALUES.fullmatch(text.strip())
        if match is None:
            name = variable["name"]
            raise ValueError(f"variable ${name}: expected label_values(...), got {text!r}")
        selector, label = match.groups()
        out.append(PanelQuery(f"${variable['name']}", "", f"count by ({label}) ({selector})"))
    return out


def queries_without_data(
    server: PrometheusServer,
    dashboard: Mapping[str, Any],
    values: Mapping[str, str] | None = None,
) -> list[tuple[PanelQuery, str]]:
    """Each query of ``dashboard`` — the panels' targets and the template
    variables' value lists — that returns no data or an error, with the reason."""
    failing = []
    for query in variable_queries(dashboard) + dashboard_queries(dashboard):
        expr = substitute_variables(query.expr, dashboard, values)
        try:
            result = server.query(expr)
        except PrometheusError as e:
            failing.append((query, f"error: {e}"))
            continue
        if not result:
            failing.append((query, f"no data for {expr}"))
    return failing
