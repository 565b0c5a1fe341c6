"""Tests of the balancer package: scheduler, baselines, calibration, recycling, simulator."""
