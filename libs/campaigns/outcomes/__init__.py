"""Call outcomes: what an ended call means for its lead (dispositions, rules, recycling)."""
