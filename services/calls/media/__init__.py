"""Twilio Media Streams: the /ws/media WebSocket, its recording, and the voice agent."""
