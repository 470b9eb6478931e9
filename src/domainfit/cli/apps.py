"""``domainfit app ...``: each app's own sub-command group, as the app defines it."""

from __future__ import annotations

import typer

from ..apps.customer_service.cli import app as customer_service
from ..apps.monitor.cli import app as monitor
from ..apps.recommend.cli import app as recommend

__all__ = ["apps_app"]

apps_app = typer.Typer(help="Industry applications built on domainfit.", no_args_is_help=True)
apps_app.add_typer(customer_service, name="customer-service")
apps_app.add_typer(monitor, name="monitor")
apps_app.add_typer(recommend, name="recommend")
