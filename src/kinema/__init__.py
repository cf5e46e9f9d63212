"""Kinema: a self-hosted video-generation service speaking the AI/ML API wire contract."""

__version__ = "0.1.0"
