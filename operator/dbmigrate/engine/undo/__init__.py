"""Backup and undo: finding pg_dump and pg_restore (``pgtools``), the backup (``backup``),
reading a backup back and hashing it (``archive``), the restore (``restore``) and the emergency
rollback (``rollback``: drop what a run created, or restore)."""
