from offload.launcher import main

main()
