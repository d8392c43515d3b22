"""Moved to ``e2e/harness.py`` (one harness for the tests, the bench and the demo). This name stays only so
that branches written before the move still import; new code imports ``e2e.harness``. Remove it once no test
imports ``vkharness``."""

from e2e.harness import *  # noqa: F403
