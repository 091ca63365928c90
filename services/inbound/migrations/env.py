from alembic import context

from gatherly.migrate import run_env

run_env(context)
