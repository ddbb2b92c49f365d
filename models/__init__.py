"""Offline model code: network, data, training, export. Needs torch; the runtime never
imports it."""
