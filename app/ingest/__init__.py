"""MQTT → database ingest service (no Flask)."""
