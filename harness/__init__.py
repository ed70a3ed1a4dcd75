"""qmail-sim's harness: replays scenario files against a target and checks the results."""
