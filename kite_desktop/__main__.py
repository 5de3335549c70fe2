import sys

from kite_desktop.app import main

sys.exit(main())
