"""Closed-loop LIBERO evaluation: offline assets, scripted demonstrations, rollouts and their metrics."""
