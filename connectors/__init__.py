"""Edges of the service: Kafka partition readers, the embedded broker, file readers and
message decoding into Arrow record batches with dead letters.

Modules are imported on demand (``from connectors.files import read_file``) so that using
one edge does not load every client library.
"""
