"""Deployment helpers: the docker-compose demo profile's init steps (demo_init)."""
