"""What crosses a service boundary: settings blocks, task schema, Kafka helpers, contract artifacts."""
