"""npespcn's version (one home: the package, ``setup.cfg`` and ``npespcn --version`` read it here)."""
__version__ = "0.2.0"
