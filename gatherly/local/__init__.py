"""Run the whole system on one machine: embedded PostgreSQL, NATS, Traefik and a supervisor."""
