//! Shared code of the example hosts (the command-line runner and the HTTP server).
