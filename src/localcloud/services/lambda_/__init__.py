"""Lambda: functions run in warm awslambdaric workers."""
