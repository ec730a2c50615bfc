"""The scheduler process (``pro-service scheduler``): its fixed periodic jobs, each in its own
app context, calling the scheduling and messaging services."""
