"""Notification domain: events to notify about, routing and templates, retry policy, secret redaction."""
