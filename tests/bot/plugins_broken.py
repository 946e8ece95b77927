"""A plugin module that cannot be imported, as a third-party bug would look."""

raise ImportError("this plugin needs a package that is not installed")
