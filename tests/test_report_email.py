"""The weekly report by e-mail: `[report]` in config.toml, checked by the loader, and the daemon's
job, run at a frozen time against a local aiosmtpd server."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from listener.config import ConfigError, load_config
from listener.daemon import Daemon
from tests.support.configs import write_setup
from tests.support.smtp import SmtpSink
from tests.test_report import HOSTILE, NOW, fill_activity

MAIL_RECEIVER = """
[[receivers]]
id = "webcare-mail"
type = "email"
to = ["webcare@bieb.test"]
"""


def email_section(port: int) -> str:
    return f"""
[email]
host = "127.0.0.1"
port = {port}
security = "none"
sender = "listener <listener@bieb.test>"
timeout = "5s"
"""


REPORT = """
[report]
weekly = "mon 08:30"
receivers = ["webcare-mail"]
org = "eemland"
"""


def problems(tmp_path: Path, extra_main: str) -> list[str]:
    path = write_setup(tmp_path, extra_main=extra_main, extra_receivers=MAIL_RECEIVER)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [str(p) for p in caught.value.problems]


def test_report_receivers_must_exist_and_be_email_receivers(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        email_section(25)
        + '\n[report]\nweekly = "mon 08:30"\nreceivers = [\n  "console",\n  "nobody",\n]\n',
    )

    config = tmp_path / "config.toml"
    assert found == [
        f"{config}:18: report.receivers: receiver 'console' is a console receiver; the report "
        "goes by e-mail (email receivers: webcare-mail)",
        f"{config}:18: report.receivers: unknown receiver 'nobody' (known: console, webcare-mail)",
    ]


def test_report_needs_the_email_section_a_known_org_and_a_real_time(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    assert problems(tmp_path, REPORT.replace('"eemland"', '"nowhere"')) == [
        f"{config}:11: report.receivers: email receiver 'webcare-mail' cannot send: "
        "config.toml has no [email] section",
        f"{config}:12: report.org: unknown organisation 'nowhere' (known: eemland)",
    ]
    assert problems(tmp_path, REPORT.replace("mon 08:30", "monday 8.30")) == [
        f"{config}:10: report.weekly: bad weekly time 'monday 8.30': write a day and a time, "
        "like 'mon 08:30'"
    ]
    assert problems(tmp_path, '[report]\nweekly = "fri 25:00"\n') == [
        f"{config}:9: report.weekly: bad weekly time 'fri 25:00': no such time of day"
    ]
    assert problems(tmp_path, '[report]\nweekly = "fri 16:00"\n') == [
        f"{config}:8: report: weekly needs receivers: email receivers from alerts/*.toml"
    ]


def test_report_templates_must_be_there_when_the_report_is_weekly(tmp_path: Path) -> None:
    path = write_setup(
        tmp_path, extra_main=email_section(25) + REPORT, extra_receivers=MAIL_RECEIVER
    )
    assert load_config(path).main.report is not None
    (tmp_path / "alerts" / "templates" / "report.txt.j2").unlink()

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    [problem] = [str(p) for p in caught.value.problems]
    assert problem.endswith("report.txt.j2: template missing ([report] weekly needs it)")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def daemon(tmp_path: Path, smtp: SmtpSink) -> Iterator[Daemon]:
    path = write_setup(
        tmp_path, extra_main=email_section(smtp.port) + REPORT, extra_receivers=MAIL_RECEIVER
    )
    d = Daemon.from_config(load_config(path), env={})
    d.clock = Clock(NOW)
    fill_activity(d.store)
    yield d
    d.store.close()


@pytest.fixture
def scheduler() -> Iterator[BackgroundScheduler]:
    s = BackgroundScheduler(timezone="Europe/Amsterdam")  # never started: jobs run by hand
    yield s


def test_the_weekly_job_is_scheduled_on_the_configured_day_in_local_time(
    daemon: Daemon, scheduler: BackgroundScheduler
) -> None:
    daemon.schedule_weekly_report(scheduler)

    job = scheduler.get_job("weekly-report")
    assert job is not None
    first = job.trigger.get_next_fire_time(None, NOW)
    assert first == datetime(2026, 11, 23, 7, 30, tzinfo=UTC)  # Monday 08:30 CET
    summer = job.trigger.get_next_fire_time(None, datetime(2026, 6, 3, tzinfo=UTC))
    assert summer.astimezone(UTC) == datetime(2026, 6, 8, 6, 30, tzinfo=UTC)  # 08:30 CEST


def test_the_weekly_report_arrives_as_text_and_html_with_the_chart(
    daemon: Daemon, smtp: SmtpSink, scheduler: BackgroundScheduler
) -> None:
    daemon.weekly_report_job(scheduler)

    [mail] = smtp.wait_for(1)
    message = mail.message
    assert mail.rcpt_tos == ["webcare@bieb.test"]
    assert message["Subject"] == (
        "listener weekly report 13-11–20-11-2026 · Bibliotheek Eemland: 7 posts, 3 alerts"
    )
    text = message.get_body(("plain",)).get_content()
    assert "Posts about Bibliotheek Eemland: 7" in text
    assert "Time from post to alert: median 10 min, 90% within 1 h 0 min" in text
    assert "leusden                   5       1" in text
    html = message.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert HOSTILE in text  # plain text is not HTML: shown as written
    [png] = [part for part in message.walk() if part.get_content_type() == "image/png"]
    assert png.get_content().startswith(b"\x89PNG")
    assert f'src="cid:{png["Content-ID"][1:-1]}"' in html
    assert scheduler.get_job("weekly-report-retry") is None


def test_a_failed_send_is_logged_and_retried_with_backoff_for_the_same_week(
    daemon: Daemon,
    smtp: SmtpSink,
    scheduler: BackgroundScheduler,
    caplog: pytest.LogCaptureFixture,
) -> None:
    smtp.reply_next(2, "451 4.3.0 try later")
    clock = daemon.clock
    assert isinstance(clock, Clock)

    with caplog.at_level(logging.WARNING):
        daemon.weekly_report_job(scheduler)
    assert "weekly report to webcare-mail failed (1 in a row), next try in 30s" in caplog.text
    retry = scheduler.get_job("weekly-report-retry")
    assert retry is not None and retry.trigger.run_date == NOW + timedelta(seconds=30)

    clock.now = NOW + timedelta(seconds=31)
    daemon.weekly_report_job(scheduler, retry=True)
    assert "failed (2 in a row), next try in 60s" in caplog.text
    retry = scheduler.get_job("weekly-report-retry")
    assert retry.trigger.run_date == clock.now + timedelta(seconds=60)

    clock.now += timedelta(seconds=61)
    daemon.weekly_report_job(scheduler, retry=True)
    [mail] = smtp.wait_for(1)
    assert "13-11–20-11-2026" in mail.message["Subject"]  # still the week that was due
    scheduler.remove_job("weekly-report-retry")
    daemon.weekly_report_job(scheduler, retry=True)  # nothing left to send
    assert len(smtp.messages) == 1 and scheduler.get_job("weekly-report-retry") is None


def test_a_permanent_failure_is_logged_as_an_error_and_not_retried(
    daemon: Daemon,
    smtp: SmtpSink,
    scheduler: BackgroundScheduler,
    caplog: pytest.LogCaptureFixture,
) -> None:
    smtp.reply_next(1, "550 5.7.1 relaying denied")

    with caplog.at_level(logging.ERROR):
        daemon.weekly_report_job(scheduler)

    assert "weekly report to webcare-mail failed for good (attempt 1)" in caplog.text
    assert "550 5.7.1 relaying denied" in caplog.text
    assert scheduler.get_job("weekly-report-retry") is None
    assert smtp.messages == []
