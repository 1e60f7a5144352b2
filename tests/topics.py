"""Producing test data so that every partition of a topic gets some.

The clients' partitioners are sticky for messages without a key: a whole producer batch
goes to one randomly chosen partition, so a few batches can leave a partition empty and a
test that expects every partition to be read would depend on chance.
"""
from __future__ import annotations

from typing import Sequence

from connectors.kafka_client import produce_json


def produce_to_every_partition(bootstrap: str, topic: str, values: Sequence, partitions: int,
                               client: str = "confluent-kafka") -> int:
    """Message ``i`` goes to partition ``i % partitions``; order within a partition is kept."""
    return sum(produce_json([bootstrap], topic, values[p::partitions], partition=p, client=client)
               for p in range(partitions) if values[p::partitions])
