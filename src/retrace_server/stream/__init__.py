"""Live stream: the official SDK's WebSocket transport, and cascade replay through connected agents."""
