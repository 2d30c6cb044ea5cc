"""Night Talk notify: tells visitors (and later units) what became of their cases."""
