"""Generated wire code for proto/kmemfleet/v1 (make proto)."""
