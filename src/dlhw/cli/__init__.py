"""The console scripts, one thin module each: parse, call the library, map errors to exit codes."""
