"""The hub: ingest of device batches, the store, rollouts, the fleet view and simulator."""
