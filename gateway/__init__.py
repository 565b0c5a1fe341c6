"""The API gateway: routing to service instances, breakers, API keys, limits, /rpc,
operator endpoints. `python -m gateway` runs it.

Its modules are imported by name (`gateway.app`, `gateway.keys`, ...): importing the package
loads none of them, so a command that only reads the keys file does not load the app."""
