from clinicpress.cli import main

main()
