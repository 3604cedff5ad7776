"""The coderops.deploy test bed: a kwok Kubernetes cluster and PostgreSQL servers on loopback.

Standard library only, so it runs before the project's virtualenv exists.
"""
