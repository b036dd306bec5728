"""Alert delivery on top of the core's rules and lifecycle: notifiers, support requests, outbox."""
