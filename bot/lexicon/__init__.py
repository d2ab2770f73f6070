"""Word lists and example messages for sentiment and escalation cues (data only)."""
