"""Simulated devices for the demo, the tests and the benchmarks.

``lab.devices`` runs a fleet of fake devices, each on its own loopback address
(127.0.0.0/8 is all local on Linux), listening on TCP ports, writing a banner line
``ELVLAB <device-id>`` on connect and ``OK`` for every line received.  Faults
(down, slow, flaky) are switched at runtime, from code or through the small HTTP
control API in ``elvwatch.lab.control``.  ``python -m elvwatch.lab serve`` runs both.

The lab binds loopback addresses only; it refuses anything else.
"""
