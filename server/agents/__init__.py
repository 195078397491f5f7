"""Agents: routing a user's turn, running a flow, and the brains that write text."""
