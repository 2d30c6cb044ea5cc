"""The event hop floor against the real broker and database: every event it offers goes
through a real consumer's inbox and outbox, and what that cost is read per hop."""

from __future__ import annotations

from sqlalchemy import create_engine, func, select

from bench.hop import hop_floor
from servicekit.db import service_metadata


def test_the_hop_floor_passes_every_event_on_and_reads_what_a_hop_cost(make_database, amqp_url):
    url = make_database("hop")

    result = hop_floor(url, amqp_url, hops_per_s=40, seconds=1.0, depth=4)

    assert set(result["cpu_ms_per_hop"]) == {"consumer", "postgresql", "rabbitmq"}
    assert result["cpu_ms_per_hop"]["consumer"] > 0
    assert result["cpu_ms_per_hop_total"] >= result["cpu_ms_per_hop"]["consumer"]
    assert result["hops_per_s"] > 0
    # Each event was applied once by the consumer: the warm-up's 5 chains and the 10
    # offered (40 hops/s for 1 s, 4 hops each), 4 applications per chain.
    inbox = service_metadata().tables["inbox"]
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(inbox)) == (5 + 10) * 4
    finally:
        engine.dispose()
