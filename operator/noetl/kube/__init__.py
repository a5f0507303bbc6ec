"""The Kubernetes operator: CRDs, kopf handlers, Jobs for steps, status, events and metrics."""
