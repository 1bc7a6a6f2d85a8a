"""Lets the example tests import the example modules next to them."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
