from bigmodels.cli import main

raise SystemExit(main())
