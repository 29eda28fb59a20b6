"""The process distill runs in: which of several processes this is (accelerate), progress
bars and plain progress lines, deferred interrupts. The bottom layer beside `distill.errors`:
it imports nothing else of distill, and every layer may import it."""
