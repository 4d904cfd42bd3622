"""A Twilio REST + status-callback simulator for tests, benchmarks and the local stack."""
