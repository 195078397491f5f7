"""Test harness shared by the project's tests: the SDK virtualenv, a server
subprocess, and small text metrics. Import as ``tests.support.<module>``."""
