"""`make run`: the whole stack on this machine and the seed scenario played through the API."""
