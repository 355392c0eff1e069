"""The crowd profile service: events to profiles, audiences and connector actions."""
