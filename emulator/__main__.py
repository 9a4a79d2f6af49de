from emulator.main import main

main()
