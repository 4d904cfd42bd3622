"""Twilio's webhooks: each verified, stored once, answered fast."""
