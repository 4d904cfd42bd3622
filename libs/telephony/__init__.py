"""Phone numbers, calling windows, rate limits and the Twilio provider."""
