"""Dispatch service: batches profile changes and delivers them to Braze."""
