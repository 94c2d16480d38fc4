from shardforge.cli import main

raise SystemExit(main())
