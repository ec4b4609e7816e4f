"""The cost planner (``python -m advaudio.plan``): projected hours, memory and disk of a run or a grid."""
