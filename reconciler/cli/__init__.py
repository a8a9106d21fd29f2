"""ramenctl, the command-line tool."""
