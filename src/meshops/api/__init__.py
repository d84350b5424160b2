"""The HTTP API: app assembly plus one thin router per area (routers call services only)."""
