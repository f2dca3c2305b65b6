"""The HTTP side: one listener (server) with /metrics, /healthz, /probe, the JSON API,
the Alertmanager webhook, the engineers' pages and forms, reports; who may do what
(bearer token, signed links, engineers' personal links).  It reads the running daemon
through the small view of view.py, never the daemon's App itself."""
