from retrace_server.cli import main

main()
