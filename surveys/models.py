"""Models of the surveys app; they arrive with their issues."""
