"""Receipts in Gmail: the sync (its API calls under the per-user quota, its steps, how receipts
are stored) and the extraction that classifies a fetched message and reads its vendor, date,
total and currency."""
