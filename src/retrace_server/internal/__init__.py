"""Routes the official SDK calls that have nothing to store on a self-hosted server."""
