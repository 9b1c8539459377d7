"""Prometheus metrics: what the workers count as they go, and what the store says at scrape time."""
