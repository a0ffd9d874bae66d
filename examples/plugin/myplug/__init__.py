"""An example of a user's own package, plugged into flowprune from outside the project."""
