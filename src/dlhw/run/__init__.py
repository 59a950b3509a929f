"""One run: build its objects, fit, test, write results.json (runner); resume it; re-test it (evaluate)."""
