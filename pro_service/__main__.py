from pro_service.cli import main

main()
