"""What every service shares: settings, database, broker, contracts, metrics, logging."""
