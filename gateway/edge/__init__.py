"""The edge app Traefik calls for every /v1 request (forwardAuth), and owner of the /v1 rest."""
