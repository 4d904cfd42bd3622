from libs.common.cli.main import main

main()
