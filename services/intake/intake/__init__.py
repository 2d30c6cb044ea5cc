"""Night Talk intake: the reception desk where visits are registered and cases are born."""
