"""What every Night Talk web service shares: auth, errors, health, metrics, logs, database, CLI."""
