"""``make bench``: how fast a case goes from the desk to the partner, on this machine.

Starts every process as compose declares it, on PostgreSQL and the local RabbitMQ (a
private vhost), measures the floors (bare HTTP, broker, database, and the event hop: what
one event's application costs with a handler doing nothing, see bench/hop.py) in the same
run so the figures can be read as ratios, and intake's capacity in a closed loop twice: with
only intake's own processes running (the figure to set beside the HTTP floor, measured
alone too) and with the whole system running. Then it offers visits at stepped fixed
rates and times accept (POST → 201) and end to end (POST → the partner's message), the
visitors' SMS still waiting when a step ends, the CPU time each process (PostgreSQL and
RabbitMQ too) spent per visit, and the transactions each service's database committed
per visit (a count that the machine's noise does not move, as it does CPU time) and the
events the consumers applied per visit (their inboxes' rows), which times the event hop
is the part of a visit's CPU the event machinery takes whatever the handlers do. A step
keeps up if every case reached the partner, p99 stayed under 1 s and the SMS waiting at
its end were less than a second's worth. Writes bench/results/<date>.json, .md and .png.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import pika
import psycopg
from sqlalchemy.engine import make_url

from bench import cpu, transactions
from bench.hop import hop_floor
from bench.load import closed_loop_throughput, open_loop, percentile
from eventbus import names, testing
from eventbus.connection import connect
from servicekit.localsystem import SERVICES, SmsGateway, free_port, running_system

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PARTNER = "lw-guokeng"


def visit(n: int) -> dict:
    """One batch with one issue signed over to the partner the benchmark listens as."""
    return {
        "channel": "daily",
        "received_at": dt.datetime.now(dt.UTC).isoformat(),
        "headcount": 1,
        "visitor": {"name": "访客", "phone": f"139{n % 100_000_000:08d}"},
        "issues": [
            {
                "category": "medical_reimbursement",
                "summary": f"医药费报销 {n}",
                "disposition": {"action": "sign_over", "unit": PARTNER},
            }
        ],
    }


# -- floors --------------------------------------------------------------------------


def http_floor(seconds: float) -> float:
    """Return the requests/s of a bare Flask JSON endpoint under the same gunicorn settings."""
    port = free_port()
    env = {**os.environ, "WEB_CONCURRENCY": "2"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "python:servicekit.gunicorn_conf",
            "--bind",
            f"127.0.0.1:{port}",
            "bench.floor_app:create_app()",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/v1/visits"
        import requests

        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.post(url, json={}, timeout=1).status_code == 201:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("HTTP floor app did not start")
            time.sleep(0.1)
        return closed_loop_throughput(url, visit, {}, seconds=seconds)
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(20)


def broker_floor(url: str, count: int) -> dict:
    """Return persistent confirmed publishes/s into a quorum queue, and consumes/s out of it."""
    conn = connect(url)
    channel = conn.channel()
    channel.queue_declare("bench.floor", durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_purge("bench.floor")
    channel.confirm_delivery()
    body = json.dumps(visit(0)).encode()
    props = pika.BasicProperties(delivery_mode=2, content_type="application/json")
    started = time.perf_counter()
    for _ in range(count):
        channel.basic_publish("", "bench.floor", body, props, mandatory=True)
    published = count / (time.perf_counter() - started)
    channel.basic_qos(prefetch_count=100)
    received = 0
    started = time.perf_counter()
    for method, _props, _body in channel.consume("bench.floor", inactivity_timeout=5):
        if method is None:
            break
        channel.basic_ack(method.delivery_tag)
        received += 1
        if received == count:
            break
    consumed = received / (time.perf_counter() - started)
    channel.cancel()
    channel.queue_delete("bench.floor")
    conn.close()
    return {"publish_confirmed_per_s": published, "consume_per_s": consumed}


def libpq_dsn(url: str) -> str:
    """Return a SQLAlchemy PostgreSQL URL as psycopg connects to it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def database_floor(url: str, count: int) -> float:
    """Return single-row INSERT + COMMIT per second on PostgreSQL."""
    with psycopg.connect(libpq_dsn(url)) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, body text)")
        conn.commit()
        started = time.perf_counter()
        for n in range(count):
            conn.execute("INSERT INTO bench_floor (body) VALUES (%s)", (f"row {n}",))
            conn.commit()
        rate = count / (time.perf_counter() - started)
        conn.execute("DROP TABLE bench_floor")
        conn.commit()
    return rate


# -- the system under load -------------------------------------------------------------


class PartnerListener:
    """Consume the partner's queue and note when each case's message arrived."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.arrived: dict[str, float] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(10)

    def _run(self):
        conn = connect(self.url)
        channel = conn.channel()
        channel.basic_qos(prefetch_count=200)
        for method, props, _body in channel.consume(f"partner.{PARTNER}", inactivity_timeout=0.2):
            if method is not None:
                self.arrived[props.headers["ce-subject"]] = time.monotonic()
                channel.basic_ack(method.delivery_tag)
            if self.stopping.is_set():
                break
        channel.cancel()
        conn.close()


class SmsQueue:
    """Read notify's store: the visitors' SMS recorded so far, and those not yet sent."""

    def __init__(self, url: str) -> None:
        self.dsn = libpq_dsn(url)

    def counts(self) -> tuple[int, int]:
        """Return (SMS to visitors recorded, of which still waiting to go out)."""
        with psycopg.connect(self.dsn) as conn:
            total, waiting = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE status IN "
                "('awaiting_contact', 'pending', 'sending')) "
                "FROM notifications WHERE channel = 'sms' AND recipient_kind = 'visitor'"
            ).fetchone()
        return total, waiting


def load_step(
    system,
    listener: PartnerListener,
    sms: SmsQueue,
    rate: float,
    seconds: float,
    drain: float,
    idle: dict[str, float],
    idle_transactions: dict[str, float],
):
    """Offer visits at a fixed rate; return latencies, whether it kept up, CPU per visit."""
    headers = system.token("city-org")
    cpu_before = cpu.snapshot(system)
    transactions_before = transactions.snapshot(system.database_urls)
    applied_before = transactions.applications(system.database_urls)
    recorded_before, _ = sms.counts()
    run = open_loop(system.url("intake", "/v1/visits"), visit, headers, rate=rate, seconds=seconds)
    # The visitors' SMS are a queue of their own (notify's delivery worker): what still
    # waits when the offering ends, in seconds of the step's own SMS, says if it keeps up.
    recorded_after, waiting_at_end = sms.counts()
    sms_per_s = max(recorded_after - recorded_before, 1) / seconds
    accepted = [s for s in run.shots if s.status == 201]
    cases = {s.body["cases"][0]["case_id"]: s for s in accepted}
    deadline = time.monotonic() + drain
    while time.monotonic() < deadline and not cases.keys() <= listener.arrived.keys():
        time.sleep(0.05)
    while time.monotonic() < deadline and sms.counts()[1]:
        time.sleep(0.2)
    cpu_ms = cpu.per_visit_ms(cpu_before, cpu.snapshot(system), idle, len(accepted))
    time.sleep(transactions.SETTLE_SECONDS)
    committed = transactions.per_visit(
        transactions_before,
        transactions.snapshot(system.database_urls),
        idle_transactions,
        len(accepted),
    )
    applied_after = transactions.applications(system.database_urls)
    applied = {
        service: round(
            (applied_after[service] - applied_before[service]) / max(len(accepted), 1), 2
        )
        for service in applied_after
    }
    accept_ms = [(s.done - s.scheduled) * 1000 for s in accepted]
    e2e_ms = [
        (listener.arrived[c] - s.scheduled) * 1000
        for c, s in cases.items()
        if c in listener.arrived
    ]
    delivered = len(e2e_ms)
    step = {
        "offered_per_s": rate,
        "seconds": seconds,
        "sent": len(run.shots),
        "accepted": len(accepted),
        "errors": len(run.shots) - len(accepted),
        "delivered": delivered,
        "accept_ms": {p: percentile(accept_ms, q) for p, q in (("p50", 50), ("p99", 99))},
        "e2e_ms": {p: percentile(e2e_ms, q) for p, q in (("p50", 50), ("p90", 90), ("p99", 99))},
        "cpu_ms_per_visit": cpu_ms,
        "cpu_ms_per_visit_total": round(sum(cpu_ms.values()), 1),
        "transactions_per_visit": committed,
        "transactions_per_visit_total": round(sum(committed.values()), 1),
        "applications_per_visit": applied,
        "applications_per_visit_total": round(sum(applied.values()), 1),
        "sms_waiting_at_end": waiting_at_end,
        "sms_waiting_s": round(waiting_at_end / sms_per_s, 2),
        "sms_waiting_after_drain": sms.counts()[1],
    }
    p99 = step["e2e_ms"]["p99"]
    step["kept_up"] = bool(
        accepted
        and delivered == len(accepted) == len(run.shots)
        and p99 is not None
        and p99 < 1000
        and step["sms_waiting_s"] < 1.0
        and step["sms_waiting_after_drain"] == 0
    )
    return step


def intake_alone_throughput(system, seconds: float) -> tuple[float, dict[str, float]]:
    """Return intake's accepted visits/s with only intake's own processes running, and
    the CPU milliseconds each process spent per visit meanwhile.

    The HTTP floor is measured alone on the machine; this is the figure to set beside it:
    the desk's API, relay and consumer with their database and the broker, the other
    services stopped so they take no CPU. Their queues are purged after (nobody applies
    those visits; the stepped load counts only its own) and they are started again.
    """
    others = [n for n in system.long_running() if not n.startswith("intake-")]
    for name in others:
        system.stop(name)
    try:
        before = cpu.snapshot(system)
        rate = closed_loop_throughput(
            system.url("intake", "/v1/visits"), visit, system.token("city-org"), seconds=seconds
        )
        after = cpu.snapshot(system)
        spent = cpu.per_visit_ms(before, after, {}, round(rate * (after[0] - before[0])))
        return rate, {name: ms for name, ms in spent.items() if ms >= 0.05}
    finally:
        conn = connect(system.amqp_url)
        try:
            channel = conn.channel()
            for service in SERVICES:
                if service != "intake":
                    channel.queue_purge(names.service_queue(service))
        finally:
            conn.close()
        for name in others:
            system.mark_log(name)
            system.start(name)
        for service in SERVICES:
            system.wait_ready(service)
        for name in others:
            if name.endswith("-consumer"):
                system.wait_consuming(name)


def peak_rss_mb(system) -> dict[str, float]:
    """Return each process's peak resident memory (largest of its own and its workers')."""
    peaks = {}
    for name, proc in system.processes.items():
        pids = [proc.pid]
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
        pids += [int(p) for p in children.stdout.split()]
        best = 0
        for pid in pids:
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        best = max(best, int(line.split()[1]))
        peaks[name] = round(best / 1024, 1)
    return peaks


# -- report --------------------------------------------------------------------------


def write_report(result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / result["date"]
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    hop = result["floors"]["event_hop"]
    lines = [
        f"# Benchmark {result['date']} — {result['machine']['cores']} cores, "
        f"{result['machine']['python']}, PostgreSQL + RabbitMQ on the same machine",
        "",
        "| floor | figure |",
        "|---|---|",
        f"| HTTP (bare Flask, same gunicorn settings) "
        f"| {result['floors']['http_per_s']:.0f} req/s |",
        f"| broker publish (persistent, confirmed, quorum) "
        f"| {result['floors']['broker']['publish_confirmed_per_s']:.0f} msg/s |",
        f"| broker consume | {result['floors']['broker']['consume_per_s']:.0f} msg/s |",
        f"| PostgreSQL single-row insert + commit | {result['floors']['database_per_s']:.0f} /s |",
        f"| event hop: a consumer passing each event on, nothing else "
        f"({hop['offered_hops_per_s']:.0f} events/s) "
        f"| {hop['cpu_ms_per_hop_total']:.1f} ms CPU / event ("
        + ", ".join(f"{k} {v:.2f}" for k, v in hop["cpu_ms_per_hop"].items())
        + ") |",
        f"| intake accepted visits, intake alone (closed loop) "
        f"| {result['intake_alone_per_s']:.0f} /s "
        f"({result['intake_alone_per_s'] / result['floors']['http_per_s']:.2f} × HTTP floor) |",
        f"| intake accepted visits, whole system running (closed loop) "
        f"| {result['intake_capacity_per_s']:.0f} /s "
        f"({result['intake_capacity_per_s'] / result['floors']['http_per_s']:.2f} × HTTP floor) |",
        "",
        "| offered /s | accepted | delivered | accept p50 / p99 ms | end-to-end p50 / p90 / p99 ms "
        "| SMS waiting at the end | CPU ms / visit | transactions / visit | kept up |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in result["load"]:
        a, e = s["accept_ms"], s["e2e_ms"]

        def f(v):
            return "–" if v is None else f"{v:.0f}"

        lines.append(
            f"| {s['offered_per_s']:.0f} | {s['accepted']}/{s['sent']} | {s['delivered']} "
            f"| {f(a['p50'])} / {f(a['p99'])} | {f(e['p50'])} / {f(e['p90'])} / {f(e['p99'])} "
            f"| {s['sms_waiting_at_end']} ({s['sms_waiting_s']:.1f} s) "
            f"| {s['cpu_ms_per_visit_total']:.0f} | {s['transactions_per_visit_total']:.1f} "
            f"| {'yes' if s['kept_up'] else 'no'} |"
        )
    kept = [s for s in result["load"] if s["kept_up"]]
    if kept:
        top = kept[-1]
        spent = sorted(top["cpu_ms_per_visit"].items(), key=lambda kv: -kv[1])
        lines += [
            "",
            f"CPU per visit at {top['offered_per_s']:.0f} visits/s "
            f"({top['cpu_ms_per_visit_total']:.0f} ms in all; {result['machine']['cores']} cores "
            f"give {1000 * result['machine']['cores'] / top['cpu_ms_per_visit_total']:.0f} "
            "visits/s at most): " + ", ".join(f"{k} {v:.1f}" for k, v in spent if v >= 0.05),
            "",
            f"Transactions per visit at {top['offered_per_s']:.0f} visits/s "
            f"({top['transactions_per_visit_total']:.1f} in all): "
            + ", ".join(f"{k} {v:.1f}" for k, v in top["transactions_per_visit"].items()),
            "",
            f"Events applied per visit at {top['offered_per_s']:.0f} visits/s "
            f"({top['applications_per_visit_total']:.1f} in all): "
            + ", ".join(f"{k} {v:.1f}" for k, v in top["applications_per_visit"].items())
            + f"; at the event hop's {hop['cpu_ms_per_hop_total']:.1f} ms each, "
            f"{top['applications_per_visit_total'] * hop['cpu_ms_per_hop_total']:.0f} ms of "
            f"the visit's {top['cpu_ms_per_visit_total']:.0f} ms is the event machinery's "
            "floor, whatever the handlers do",
        ]
    alone = sorted(result["intake_alone_cpu_ms_per_visit"].items(), key=lambda kv: -kv[1])
    lines += [
        "",
        "CPU per visit with intake alone (closed loop, "
        f"{sum(v for _, v in alone):.1f} ms in all): "
        + ", ".join(f"{k} {v:.1f}" for k, v in alone),
        "",
        f"SMS taken by the gateway: {result['sms_sent']}",
        "",
        "Peak RSS (MB): " + ", ".join(f"{k} {v}" for k, v in result["peak_rss_mb"].items()),
    ]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rates = [s["offered_per_s"] for s in result["load"]]
        fig, ax = plt.subplots(figsize=(7, 4))
        for key, style in (("p50", "o-"), ("p99", "s--")):
            ax.plot(
                rates,
                [s["e2e_ms"][key] or float("nan") for s in result["load"]],
                style,
                label=f"end to end {key}",
            )
            ax.plot(
                rates,
                [s["accept_ms"][key] or float("nan") for s in result["load"]],
                style,
                alpha=0.5,
                label=f"accept {key}",
            )
        ax.set_xlabel("offered load (visits/s)")
        ax.set_ylabel("latency (ms)")
        ax.set_yscale("log")
        ax.set_title(f"Night Talk, {result['machine']['cores']} cores, {result['date']}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(stem.with_suffix(".png"), dpi=100)
    except ImportError:
        print("matplotlib not installed: no plot", file=sys.stderr)
    return stem.with_suffix(".md")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", default="50,100,200,300", help="offered visits/s, stepped")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each step")
    parser.add_argument("--drain", type=float, default=15.0, help="wait for stragglers")
    parser.add_argument(
        "--hop-rate",
        type=float,
        default=60.0,
        help="events/s offered to the hop floor's consumer (60: what each of the four "
        "consumers applies at 30 visits/s)",
    )
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    folder = RESULTS / "tmp" / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    result = {
        "date": dt.date.today().isoformat(),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
    with contextlib.ExitStack() as stack:
        amqp_url = stack.enter_context(testing.temporary_vhost("nighttalk-bench"))
        urls = {
            s: stack.enter_context(testing.temporary_database("postgresql", f"bench_{s}", ""))
            for s in SERVICES
        }
        floor_db = stack.enter_context(testing.temporary_database("postgresql", "bench_floor", ""))
        print("floors...", file=sys.stderr)
        result["floors"] = {
            "http_per_s": http_floor(args.seconds),
            "broker": broker_floor(amqp_url, 3000),
            "database_per_s": database_floor(floor_db, 3000),
        }
        print("event hop floor...", file=sys.stderr)
        result["floors"]["event_hop"] = hop_floor(
            floor_db,
            amqp_url,
            hops_per_s=args.hop_rate,
            seconds=args.seconds,
            log_path=folder / "hop.log",
        )
        print("starting the system...", file=sys.stderr)
        # The visitor's receipt goes out by SMS: without a gateway every send would fail
        # and be retried, work a real deployment does not do.
        sms = SmsGateway()
        stack.callback(sms.close)
        system = stack.enter_context(
            running_system(
                compose=ROOT / "deploy" / "compose.yaml",
                folder=folder,
                amqp_url=amqp_url,
                database_urls=urls,
                extra_env={
                    # One token offers the whole load: measure capacity, not the per-caller
                    # limit.
                    "NIGHTTALK_RATE_LIMIT": "off",
                    "NIGHTTALK_SMS_URL": sms.url,
                    # No quiet hours: whatever the hour of the run, every SMS of a visit goes
                    # out (the receipt and the routing notice), so runs compare.
                    "NIGHTTALK_NOTIFY_QUIET_START": "00:00",
                    "NIGHTTALK_NOTIFY_QUIET_END": "00:00",
                },
            )
        )
        listener = stack.enter_context(PartnerListener(amqp_url))
        sms_queue = SmsQueue(urls["notify"])
        print("intake alone...", file=sys.stderr)
        result["intake_alone_per_s"], result["intake_alone_cpu_ms_per_visit"] = (
            intake_alone_throughput(system, args.seconds)
        )
        print("intake with the whole system...", file=sys.stderr)
        result["intake_capacity_per_s"] = closed_loop_throughput(
            system.url("intake", "/v1/visits"),
            visit,
            system.token("city-org"),
            seconds=args.seconds,
        )
        time.sleep(args.drain)  # let the capacity burst drain before the stepped load
        idle = cpu.idle_rates(system, 5.0)
        idle_transactions = transactions.idle_rates(system.database_urls, 5.0)
        result["load"] = []
        for rate in rates:
            print(f"offering {rate:.0f} visits/s...", file=sys.stderr)
            step = load_step(
                system,
                listener,
                sms_queue,
                rate,
                args.seconds,
                args.drain,
                idle,
                idle_transactions,
            )
            result["load"].append(step)
            print(json.dumps(step), file=sys.stderr)
        result["peak_rss_mb"] = peak_rss_mb(system)
        result["sms_sent"] = len(sms.messages)
    report = write_report(result)
    print(report.read_text())


if __name__ == "__main__":
    main()
