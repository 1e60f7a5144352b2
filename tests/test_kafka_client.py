"""Kafka readers and helpers against a real embedded broker (Tansu), both clients."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from connectors.broker import BrokerStartError, EmbeddedBroker
from connectors.decode import decode_json_messages
from connectors.kafka_client import (
    CLIENTS,
    BrokerUnavailable,
    RawPoll,
    create_topic,
    list_partitions,
    open_partition_reader,
    produce_json,
)


def read_all(reader, upto: int, max_records: int = 1000, deadline_s: float = 30.0) -> list[RawPoll]:
    """Poll until the offset ``upto`` has been read (or fail after the deadline)."""
    polls, end = [], time.monotonic() + deadline_s
    while time.monotonic() < end:
        p = reader.poll(max_records, 0.5)
        if len(p):
            polls.append(p)
            if p.next_offset >= upto:
                return polls
    raise AssertionError(f"did not reach offset {upto}; got {sum(map(len, polls))} messages")


@pytest.mark.parametrize("producer", CLIENTS)
@pytest.mark.parametrize("client", CLIENTS)
def test_produce_and_read_back_all_messages(kafka_broker, topic_factory, producer, client):
    topic = topic_factory(partitions=2)
    bs = [kafka_broker.bootstrap]
    rows0 = [{"i": i, "p": 0, "s": "x" * (i % 7)} for i in range(1500)]
    rows1 = [{"i": i, "p": 1} for i in range(300)]
    assert produce_json(bs, topic, rows0, partition=0, client=producer) == 1500
    assert produce_json(bs, topic, rows1, partition=1, client=producer) == 300
    for part, rows in ((0, rows0), (1, rows1)):
        with open_partition_reader(client, bs, topic, part, None) as r:
            polls = read_all(r, len(rows), max_records=400)
            assert all(len(p) <= 400 for p in polls)
            values = [v for p in polls for v in p.values]
            offsets = np.concatenate([p.offsets for p in polls])
            stamps = np.concatenate([p.timestamps_ms for p in polls])
    # each message exactly once, in order, with consecutive offsets
            assert [json.loads(v) for v in values] == rows
            np.testing.assert_array_equal(offsets, np.arange(len(rows)))
            assert offsets.dtype == np.int64 and stamps.dtype == np.int64
            now_ms = time.time() * 1000
            assert np.all((stamps > now_ms - 600_000) & (stamps <= now_ms + 60_000))


@pytest.mark.parametrize("client", CLIENTS)
def test_timestamps_round_trip_and_decode(kafka_broker, topic_factory, client):
    topic = topic_factory()
    bs = [kafka_broker.bootstrap]
    ts = [1_700_000_000_000 + 1000 * i for i in range(50)]
    vals = [b'{"m": %d, "a": "k%d"}' % (i, i % 3) for i in range(50)]
    vals[7] = b"not json"
    produce_json(bs, topic, vals, partition=0, timestamps_ms=ts)
    with open_partition_reader(client, bs, topic, 0, None) as r:
        p = read_all(r, 50, max_records=100)
    offsets = np.concatenate([x.offsets for x in p])
    stamps = np.concatenate([x.timestamps_ms for x in p])
    np.testing.assert_array_equal(stamps, ts)
    values = [v for x in p for v in x.values]
    d = decode_json_messages(values, ["m"], ["a"], timestamps_ms=stamps, offsets=offsets)
    assert [dl.offset for dl in d.dead_letters] == [7]
    expected = [i for i in range(50) if i != 7]
    assert d.batch.column("m").to_pylist() == [float(i) for i in expected]
    assert d.batch.column("event_time_ms").to_pylist() == [ts[i] for i in expected]


@pytest.mark.parametrize("client", CLIENTS)
def test_seek_beginning_end(kafka_broker, topic_factory, client):
    topic = topic_factory()
    bs = [kafka_broker.bootstrap]
    with open_partition_reader(client, bs, topic, 0, None) as r:
        assert (r.beginning_offset(), r.end_offset()) == (0, 0)
        assert len(r.poll(10, 0.2)) == 0
        total = 0
        for n in (400, 1, 37):  # several record batches: end must count every record
            produce_json(bs, topic, [{"n": total + i} for i in range(n)], partition=0)
            total += n
            assert r.end_offset() == total
        assert r.beginning_offset() == 0
        r.seek(399)
        p = r.poll(5, 2.0)
        assert p.offsets.tolist() == [399, 400, 401, 402, 403]
        assert [json.loads(v)["n"] for v in p.values] == [399, 400, 401, 402, 403]
        r.seek(10)
        p = r.poll(1, 2.0)
        assert p.offsets.tolist() == [10]
        r.seek(total)
        assert len(r.poll(10, 0.3)) == 0


@pytest.mark.parametrize("client", CLIENTS)
def test_committed_offsets_round_trip_per_group(kafka_broker, topic_factory, client):
    topic = topic_factory(partitions=2)
    bs = [kafka_broker.bootstrap]
    produce_json(bs, topic, [{"n": i} for i in range(100)], partition=0)
    other = CLIENTS[1 - CLIENTS.index(client)]
    g1, g2 = f"g1-{topic}", f"g2-{topic}"
    with open_partition_reader(client, bs, topic, 0, g1) as a, open_partition_reader(client, bs, topic, 0, g2) as b:
        assert a.committed() is None and b.committed() is None
        a.commit(42)
        b.commit(7)
        assert (a.committed(), b.committed()) == (42, 7)
        a.commit(50)
        assert a.committed() == 50
    # a new reader (and the other client) sees each group's offset, per partition
    with open_partition_reader(other, bs, topic, 0, g1) as c:
        assert c.committed() == 50
        # with nothing chosen, reading starts at the committed offset
        assert c.poll(1, 3.0).offsets.tolist() == [50]
    with open_partition_reader(client, bs, topic, 1, g1) as d:
        assert d.committed() is None
    with open_partition_reader(client, bs, topic, 0, None) as e:
        assert e.committed() is None
        with pytest.raises(ValueError):
            e.commit(3)


@pytest.mark.parametrize("client", CLIENTS)
def test_list_partitions_sees_new_topics(kafka_broker, topic_factory, client):
    bs = [kafka_broker.bootstrap]
    missing = f"missing-{time.time_ns()}"
    assert list_partitions(client, bs, missing) == []
    topic = topic_factory(partitions=3)
    assert list_partitions(client, bs, topic) == [0, 1, 2]
    create_topic(bs, missing, 2)
    assert list_partitions(client, bs, missing) == [0, 1]
    create_topic(bs, missing, 2)  # exist_ok


def test_unknown_client_is_rejected(kafka_broker):
    with pytest.raises(ValueError, match="kafka-python"):
        open_partition_reader("kafka-java", [kafka_broker.bootstrap], "t", 0, None)


def test_embedded_broker_lifecycle():
    b = EmbeddedBroker()
    with pytest.raises(RuntimeError):
        _ = b.bootstrap
    with b:
        assert b.running
        host, port = b.bootstrap.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        with pytest.raises(BrokerStartError, match="in use"):
            EmbeddedBroker(port=int(port)).start()
    assert not b.running


def _until(fn, deadline_s: float = 30.0):
    """Call ``fn`` until it returns a truthy value, retrying BrokerUnavailable with backoff."""
    end, delay, unavailable = time.monotonic() + deadline_s, 0.05, 0
    while time.monotonic() < end:
        try:
            out = fn()
            if out:
                return out, unavailable
        except BrokerUnavailable:
            unavailable += 1
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
    raise AssertionError("condition not reached before the deadline")


@pytest.mark.parametrize("client", CLIENTS)
def test_reader_survives_broker_restart(client):
    with EmbeddedBroker() as broker:
        bs = [broker.bootstrap]
        create_topic(bs, "restart", 1)
        produce_json(bs, "restart", [{"n": i} for i in range(10)], partition=0)
        r = open_partition_reader(client, bs, "restart", 0, "g-restart")
        try:
            assert read_all(r, 10)[-1].next_offset == 10
            r.commit(10)
            broker.stop()
            # the broker is gone: poll and commit report it (retriable), never a fatal error
            with pytest.raises(BrokerUnavailable):
                for _ in range(20):
                    r.poll(100, 0.2)
            with pytest.raises(BrokerUnavailable):
                r.commit(10)
            broker.start()
            assert broker.bootstrap == bs[0]
            # memory storage lost the topic: recreate it and produce new data
            create_topic(bs, "restart", 1)
            produce_json(bs, "restart", [{"n": 100 + i} for i in range(5)], partition=0)
            polls = []

            def got_all():
                p = r.poll(100, 0.3)
                polls.append(p)
                return sum(map(len, polls)) >= 5

            _until(got_all)
            values = [json.loads(v)["n"] for p in polls for v in p.values]
            assert values == [100, 101, 102, 103, 104]
            _until(lambda: r.commit(5) or True)
            assert r.committed() == 5
        finally:
            r.close()


def test_run_broker_foreground_until_interrupted():
    import signal
    import subprocess
    import sys

    from connectors.broker import _free_port

    port = _free_port("127.0.0.1")
    proc = subprocess.Popen([sys.executable, "-c", f"from connectors.broker import run_broker; "
                             f"raise SystemExit(run_broker({port}))"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert f"127.0.0.1:{port}" in line
        create_topic([f"127.0.0.1:{port}"], "fg", 2)
        assert list_partitions("confluent-kafka", [f"127.0.0.1:{port}"], "fg") == [0, 1]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(120) == 0  # generous: a busy machine stops it slowly, a hang never
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
