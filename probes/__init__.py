"""Probes: talk to devices, return Observations. Imports nothing else of elvwatch."""
