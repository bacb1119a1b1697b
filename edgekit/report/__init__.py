"""Reports a person reads: terminal tables, JSON, and self-contained HTML with plots."""
