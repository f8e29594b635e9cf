from fmnist_search.cli import main

raise SystemExit(main())
