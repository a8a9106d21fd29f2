"""Pure planners: every decision of the operator, with no I/O and no clock reads."""
