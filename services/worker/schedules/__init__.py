"""The worker's side of daily schedules: finding due ones, and placing their calls."""
