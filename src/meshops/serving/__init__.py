"""Model serving: endpoints bound to model aliases, routing, prediction logs, batch scoring."""
