"""The Twilio-facing service: voice and status webhooks, Media Streams WebSockets."""
