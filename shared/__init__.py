"""Contracts shared by every Trainyard service: events, streams, settings, storage and model helpers."""
