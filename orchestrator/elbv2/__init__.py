"""ELBv2, the Application Load Balancer API: the query protocol and its operations.

The data plane that serves the listeners is ``orchestrator.load_balancer``.
"""
