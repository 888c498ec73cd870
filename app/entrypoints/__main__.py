from app.entrypoints.cli.main import main

main()
