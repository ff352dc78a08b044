"""Currents: a real-time streaming personalization engine."""

__version__ = "0.1.0"
