"""`python -m distill` (and `accelerate launch -m distill`) run the CLI."""

from distill.cli import main

main()
