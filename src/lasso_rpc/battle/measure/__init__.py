"""Measure: from router telemetry and client records to figures and verdicts.

- ``histograms``: HDR latency histograms (µs), encoded and live, percentiles;
- ``data``: ``CollectedData`` and its buckets and timelines (frozen values);
- ``event_source``: ``/api/events`` frames → events, ``EventStream`` (router in a child);
- ``sampler``: the router process's RSS and CPU;
- ``accumulators``, ``collector``: ``Collector``, bounded per-bucket aggregates of both views;
- ``analysis``, ``recovery``, ``analyzer``: ``analyze()`` → ``Analysis``, with the recovery rule;
- ``slo``: ``SLO`` targets and their verdicts;
- ``baseline``: a result against a saved one (``compare``, ``Thresholds``).

A new SLO: a key in ``slo._KEYS`` (its operator and a reader of the ``Analysis``; a reader
returns a string saying why when the figure was not measured).
"""
