"""The write service: each write request of the app becomes a task; it answers the result."""
