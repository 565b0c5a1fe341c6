"""What crosses a service boundary: settings, task schema, Kafka helpers, contract artifacts."""
