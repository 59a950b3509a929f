"""One run and a sweep: build, validate, resume, results.json, sweep callbacks, threads, speed."""
