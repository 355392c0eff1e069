"""The gRPC surface of the profile service: request validation and servicers."""
