"""kill -9 the delivery process between a send and its recording: one delivery per
(occasion, recipient, channel), except on SMTP, which cannot tell a duplicate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from notify_sample_events import Visit, assignment_resolved, case_routed, supervision_event
from notify_test_servers import PARTNER, SECRET
from sqlalchemy import select

from notify import models
from notify.delivery import UNKNOWN_OUTCOME

NIGHTTALK = str(Path(sys.executable).parent / "nighttalk")


def test_kill_9_between_send_and_record(
    deliver, runtime, database_url, partner_unit, gateway, smtp, partner_hook, tmp_path
):
    visit = Visit()
    for event in [
        visit.case_registered(),
        visit.contact_recorded(),
        case_routed(visit, partner_unit),
        supervision_event("case.warning", visit, PARTNER),
        supervision_event(
            "case.escalated", visit, PARTNER, level=1, supervisor_unit="city-org", supervisor="黄"
        ),
        assignment_resolved(visit, PARTNER),
    ]:
        deliver(event)

    running: dict[str, subprocess.Popen] = {}
    killed: list[str] = []

    def kill_once(channel: str):
        """Kill the worker the first time this channel's server has taken a message."""

        def hook(_received) -> None:
            if channel not in killed:
                killed.append(channel)
                os.kill(running["worker"].pid, signal.SIGKILL)

        return hook

    gateway.on_request = kill_once(models.SMS)
    partner_hook.on_request = kill_once(models.WEBHOOK)
    smtp.on_message = kill_once(models.EMAIL)
    env = {
        **os.environ,
        "NOTIFY_DATABASE_URL": database_url,
        # Events stay in the outbox (counted below); the relay publishes them in production.
        "AMQP_URL": "amqp://guest:guest@127.0.0.1:9/",
        "NIGHTTALK_VAR_DIR": str(tmp_path),
        "NIGHTTALK_SMS_URL": gateway.url,
        "NIGHTTALK_SMS_DEDUPES": "1",  # this gateway honours Idempotency-Key
        "NIGHTTALK_SMTP_HOST": "127.0.0.1",
        "NIGHTTALK_SMTP_PORT": str(smtp.port),
        "NIGHTTALK_WEBHOOK_SECRET": SECRET,
        # A restarted worker takes over 'sending' rows at once (no other worker runs).
        "NIGHTTALK_NOTIFY_SENDING_TIMEOUT": "0",
        # No quiet hours: the test must not depend on the hour it runs at.
        "NIGHTTALK_NOTIFY_QUIET_START": "00:00",
        "NIGHTTALK_NOTIFY_QUIET_END": "00:00",
    }

    exits = []
    for _ in range(6):
        running["worker"] = subprocess.Popen(
            [NIGHTTALK, "notify", "deliver", "--once"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        exits.append(running["worker"].wait(timeout=120))
        if exits[-1] == 0:
            break

    assert sorted(killed) == [models.EMAIL, models.SMS, models.WEBHOOK]
    assert exits == [-signal.SIGKILL] * 3 + [0]
    with runtime.sessions() as session:
        rows = session.scalars(
            select(models.Notification).where(models.Notification.case_id == visit.case_ids[0])
        ).all()
        letters = session.scalars(select(models.Letter)).all()
        outbox = models.metadata.tables["outbox"]
        announced = Counter(session.execute(select(outbox.c.routing_key)).scalars())
    by_channel: dict[str, list[models.Notification]] = {}
    for row in rows:
        if row.status != models.UNREACHABLE:  # the leader has no phone
            by_channel.setdefault(row.channel, []).append(row)

    # SMS and webhook: resent with the same Idempotency-Key, so one message each.
    for channel, server, count in [
        (models.SMS, gateway, 4),
        (models.WEBHOOK, partner_hook, 2),
    ]:
        sent = by_channel[channel]
        assert [r.status for r in sent] == [models.DELIVERED] * count
        assert set(server.accepted) == {r.id for r in sent}
        assert len(server.requests) == count + 1  # the one resend after the kill
    # SMTP: the message whose outcome the kill hid is not sent again; it waits for an
    # operator as failed. Every e-mail reached the server exactly once.
    mails = by_channel[models.EMAIL]
    assert Counter(r.status for r in mails) == {models.DELIVERED: 2, models.FAILED: 1}
    (unknown,) = [r for r in mails if r.status == models.FAILED]
    assert unknown.last_error == UNKNOWN_OUTCOME
    ids = Counter(m["X-NightTalk-Notification"] for m in smtp.messages)
    assert ids == {r.id: 1 for r in mails}
    # The letter is stored with its record: once.
    assert [r.status for r in by_channel[models.LETTER]] == [models.DELIVERED]
    assert len(letters) == 1
    assert announced["notification.delivered"] == 4 + 2 + 2 + 1
    assert announced["notification.failed"] == 1
