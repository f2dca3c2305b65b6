"""Rules: turn Observations into device states and fault transitions."""
