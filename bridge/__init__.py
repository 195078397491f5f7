"""Browser bridge: serves the voice page and relays each browser WebSocket to
its own realtime session on the service (protocol.md section 3)."""
