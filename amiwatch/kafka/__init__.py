"""Kafka plumbing shared by the services: the local broker, topics, clients."""
