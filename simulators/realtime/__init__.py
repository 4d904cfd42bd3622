"""A local realtime speech-to-speech model speaking the OpenAI Realtime API wire format."""
