"""Knowledge: retrieval over stored channel history and added documents."""
