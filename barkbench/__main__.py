from barkbench.cli import main

main()
