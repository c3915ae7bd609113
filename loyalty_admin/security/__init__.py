"""Access hardening: login lock-out, session expiry, two-factor login, audit actor."""
