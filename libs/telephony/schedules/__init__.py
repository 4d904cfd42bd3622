"""Daily scheduled calls: occurrence computation, due checks and placement."""
