"""read_service."""
