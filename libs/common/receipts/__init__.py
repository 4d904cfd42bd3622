"""Receipts in Gmail: classify a fetched message and extract vendor, date, total and currency."""
