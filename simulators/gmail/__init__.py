"""A Gmail REST v1 + Google OAuth simulator for tests, benchmarks and the local stack."""
