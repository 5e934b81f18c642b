"""``kubectl dbmigrate``: the plugin a person runs in a terminal, thin over the API objects.

Every command reads or writes the same objects a GitOps user would (the DatabaseMigration, its
Jobs, pods and Events, a MigrationRollback request, an annotation with a token), through the API
server with the user's own kubeconfig, context and namespace, so anything it does can also be
done with plain ``kubectl`` and a manifest. One module per command group; ``main`` dispatches.
"""
