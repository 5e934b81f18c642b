"""``python -m dbmigrate.kubectl``: the plugin without its console script (the krew launcher)."""

from dbmigrate.kubectl.main import entry

entry()
