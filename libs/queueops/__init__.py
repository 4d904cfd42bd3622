"""Queue operations: the broker and its adapter, worker middleware, dead letters, queue
health and throughput, heartbeats, leader election, periodic emission, the outbox and the
status report."""
