from rstfleet.cli import main

raise SystemExit(main())
