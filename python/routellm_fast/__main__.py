from routellm_fast.cli import main

raise SystemExit(main())
