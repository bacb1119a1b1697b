"""Backends: lower the IR to a target format or runtime."""
