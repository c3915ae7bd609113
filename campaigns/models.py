"""Models of the campaigns app; they arrive with their issues."""
