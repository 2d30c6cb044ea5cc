"""A bad number, time or switch among notify's settings stops it at start, naming it."""

from __future__ import annotations

import pytest

from notify import channels
from notify.delivery import Settings, check_settings
from servicekit.testing import start_refused

BAD_SETTINGS = [
    ("NIGHTTALK_NOTIFY_MAX_ATTEMPTS", "five"),
    ("NIGHTTALK_NOTIFY_MAX_ATTEMPTS", "0"),
    ("NIGHTTALK_NOTIFY_BACKOFF_BASE", "-30"),
    ("NIGHTTALK_NOTIFY_BACKOFF_MAX", "1h"),
    ("NIGHTTALK_NOTIFY_SENDING_TIMEOUT", "-1"),
    ("NIGHTTALK_NOTIFY_BATCH", "0"),
    ("NIGHTTALK_NOTIFY_SENDERS", "0"),
    ("NIGHTTALK_NOTIFY_QUIET_START", "25:00"),
    ("NIGHTTALK_NOTIFY_QUIET_END", "8h"),
    ("NIGHTTALK_NOTIFY_DESK_MINUTES", "two hours"),
    ("NIGHTTALK_SMS_TIMEOUT", "ten"),
    ("NIGHTTALK_SMS_DEDUPES", "maybe"),
    ("NIGHTTALK_SMTP_PORT", "smtp"),
    ("NIGHTTALK_SMTP_TIMEOUT", "-1"),
    ("NIGHTTALK_SMTP_STARTTLS", "sometimes"),
    ("NIGHTTALK_WEBHOOK_TIMEOUT", "0"),
]


@pytest.mark.parametrize(("variable", "value"), BAD_SETTINGS)
def test_a_bad_setting_is_refused_naming_it(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=variable):
        check_settings()


def test_the_settings_read_as_written(monkeypatch):
    for variable, value in {
        "NIGHTTALK_NOTIFY_MAX_ATTEMPTS": "3",
        "NIGHTTALK_NOTIFY_BACKOFF_BASE": "0.5",
        "NIGHTTALK_NOTIFY_SENDERS": "2",
        "NIGHTTALK_NOTIFY_QUIET_START": "21:30",
        "NIGHTTALK_SMTP_PORT": "2525",
        "NIGHTTALK_SMTP_STARTTLS": "yes",
        "NIGHTTALK_SMS_DEDUPES": "0",
    }.items():
        monkeypatch.setenv(variable, value)
    check_settings()
    settings = Settings.from_env()
    assert (settings.max_attempts, settings.backoff_base, settings.senders) == (3, 0.5, 2)
    assert settings.quiet_start.isoformat() == "21:30:00"
    smtp, sms = channels.Smtp.from_env(), channels.SmsGateway.from_env()
    assert (smtp.port, smtp.starttls, sms.dedupes) == (2525, True, False)


def test_a_bad_setting_stops_the_delivery_worker_naming_it(database_url, amqp_url, tmp_path):
    ended = start_refused(
        "notify",
        ["deliver"],
        database_url=database_url,
        amqp_url=amqp_url,
        var_dir=tmp_path,
        NIGHTTALK_SMTP_PORT="smtp",
    )
    assert ended.returncode != 0
    assert "NIGHTTALK_SMTP_PORT" in ended.stderr, ended.stderr[-2000:]
    assert "Traceback" not in ended.stderr, ended.stderr[-2000:]
