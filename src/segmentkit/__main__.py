from segmentkit.cli import main

raise SystemExit(main())
