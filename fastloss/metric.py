"""metric losses (placeholder until the family lands)."""
__all__ = []
