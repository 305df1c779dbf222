"""Tables and figures generated only from stored results."""
