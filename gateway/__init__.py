"""The Gatherly gateway: Traefik configuration (traefik/) and the edge app (edge/)."""
