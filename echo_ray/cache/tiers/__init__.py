"""Cache tiers, one per module. Only `object_store` imports Ray; import it explicitly."""
