"""Exporters: Prometheus metrics, notifications, reports and dashboards."""
