"""One module per mechanism; each imports only osipc's core and its one backend."""
