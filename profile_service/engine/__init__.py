"""The profile engine: pure, Redis-free evaluation of events against a profile state."""
