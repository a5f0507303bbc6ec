"""NoETL: workflow playbooks run step by step, as Kubernetes Jobs or as local processes."""

__version__ = "0.1.0"
