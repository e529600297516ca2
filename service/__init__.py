"""assistd's gRPC service."""
