from gimport.cli import main

raise SystemExit(main())
