"""Local stand-ins for providers that cannot run here, speaking their real wire formats."""
