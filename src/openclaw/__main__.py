from openclaw.cli.app import main

raise SystemExit(main())
