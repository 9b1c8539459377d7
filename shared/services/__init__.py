"""Domain services: plain functions over a session, shared by the API and the workers."""
