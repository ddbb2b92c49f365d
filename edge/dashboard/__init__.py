"""The hub operators' web dashboard: live alerts, parcel review, history, audit, statistics.

``edge.dashboard.app.create_app`` builds the FastAPI app over a ``Store``. This package imports
nothing of the web stack itself, so ``edge.dashboard.auth.hash_password`` serves the command
line without FastAPI loaded.
"""
