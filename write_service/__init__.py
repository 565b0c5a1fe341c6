"""write_service."""
