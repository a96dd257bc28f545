"""Real servers for the tests: started on free loopback ports, stopped by PID afterwards."""
