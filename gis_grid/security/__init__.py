"""Access control, API keys and the tamper-evident audit log (no HTTP here)."""
