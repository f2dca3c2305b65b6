"""Tickets: contract terms, ticket lifecycle, SLA clocks, preventive schedules, the store."""
