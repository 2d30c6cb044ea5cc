"""RabbitMQ definitions of the system, for a broker to load at start.

The same topology the services declare at start (eventbus.topology), written as a
definitions file: exchanges, each consuming service's quorum queue with its bindings
and dead-letter queue, and per-service policies for dead-lettering and the delivery
limit. Loading it at boot means the queues exist (and keep events) before any
consumer has ever run.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable, Mapping
from typing import Any

from eventbus import names
from eventbus.topology import DEFAULT_DELIVERY_LIMIT


def password_hash(password: str, salt: bytes | None = None) -> str:
    """Hash a password as RabbitMQ's rabbit_password_hashing_sha256 does."""
    salt = salt if salt is not None else os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def service_queue_arguments(service: str, delivery_limit: int) -> dict[str, Any]:
    """Return the arguments topology.declare_service_queue declares the queue with."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": names.DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": service,
    }


def build(
    bindings: Mapping[str, Iterable[str]],
    *,
    user: str,
    password: str,
    vhost: str = "/",
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
    salt: bytes | None = None,
) -> dict[str, Any]:
    """Return the definitions for the consuming services and their binding keys."""

    def exchange(name: str, kind: str) -> dict[str, Any]:
        return {
            "name": name,
            "vhost": vhost,
            "type": kind,
            "durable": True,
            "auto_delete": False,
            "internal": False,
            "arguments": {},
        }

    def queue(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": name,
            "vhost": vhost,
            "durable": True,
            "auto_delete": False,
            "arguments": arguments,
        }

    def binding(source: str, destination: str, key: str) -> dict[str, Any]:
        return {
            "source": source,
            "vhost": vhost,
            "destination": destination,
            "destination_type": "queue",
            "routing_key": key,
            "arguments": {},
        }

    queues, links, policies = [], [], []
    for service in sorted(bindings):
        main, dead = names.service_queue(service), names.dead_letter_queue(service)
        queues.append(queue(dead, {"x-queue-type": "quorum"}))
        links.append(binding(names.DEAD_LETTER_EXCHANGE, dead, service))
        queues.append(queue(main, service_queue_arguments(service, delivery_limit)))
        links += [binding(names.EVENTS_EXCHANGE, main, key) for key in sorted(bindings[service])]
        policies.append(
            {
                "vhost": vhost,
                "name": f"nighttalk-{service}-dead-letters",
                "pattern": f"^{main.replace('.', '[.]')}$",
                "apply-to": "queues",  # "quorum_queues" needs RabbitMQ 3.12+
                "priority": 0,
                "definition": {
                    "dead-letter-exchange": names.DEAD_LETTER_EXCHANGE,
                    "dead-letter-routing-key": service,
                    "delivery-limit": delivery_limit,
                },
            }
        )
    return {
        "users": [
            {
                "name": user,
                "password_hash": password_hash(password, salt),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": ["administrator"],
            }
        ],
        "vhosts": [{"name": vhost}],
        "permissions": [
            {"user": user, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"}
        ],
        "exchanges": [
            exchange(names.EVENTS_EXCHANGE, "topic"),
            exchange(names.PARTNERS_EXCHANGE, "topic"),
            exchange(names.DEAD_LETTER_EXCHANGE, "direct"),
        ],
        "queues": queues,
        "bindings": links,
        "policies": policies,
    }
