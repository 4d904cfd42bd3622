"""The Gmail receipts sync: its API calls, its steps, how receipts are stored."""
