"""Security and robustness: property-based input tests, isolation, signatures, secrets."""
