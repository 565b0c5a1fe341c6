"""The read service: each read request of the app becomes a task; it answers the result."""
