from perfmode.cli import main

main()
