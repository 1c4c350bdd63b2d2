"""Exchange formats for interval data: Green Button (NAESB ESPI) and CSV, both directions."""
