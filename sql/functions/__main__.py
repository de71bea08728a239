"""``python -m sql.functions``: print the function table docs/SQL.md embeds."""

from sql.functions import docs_table

print(docs_table())
