"""dbmigrate: safe PostgreSQL schema migrations, as a Kubernetes operator and a CLI.

The same package runs the operator (``dbmigrate operator``) and every step of a migration
(``dbmigrate plan|backup|apply|verify|rollback``), so a step can also be run by hand.
"""

__version__ = "0.1.0"
API_GROUP = "dbmigrate.io"
API_VERSION = "v1alpha1"
KIND = "DatabaseMigration"
PLURAL = "databasemigrations"
