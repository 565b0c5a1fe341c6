"""Shared fixtures: real servers started once per session."""

pytest_plugins = ["tests.cluster_fixtures", "tests.kafka_fixtures", "tests.pipeline_fixtures"]
