"""Models of the rewards app; they arrive with their issues."""
