"""What frugal tells its operators: metrics, savings, summaries, request logs."""
