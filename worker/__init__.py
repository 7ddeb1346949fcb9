"""The worker daemon: claims tasks from MongoDB and runs them in child processes.

``config.WorkerConfig`` (settings) · ``daemon.Daemon`` / ``daemon.run_worker`` (the loop and
its entry point) · ``executor.Executor`` (the child processes) · ``heartbeat.Heartbeat``
(whoami, leases, cancellations) · ``stats.collect`` (this machine's resources).

Nothing is imported here: executor children load this package and must stay light.
"""
