"""``LakebookApp``: the Jupyter server extension behind the Lake panel."""

from __future__ import annotations

from jupyter_server.extension.application import ExtensionApp
from traitlets import Unicode

from .alerts import AlertsAPI, alert_handlers
from .api import LakeAPI
from .dashboards import DashboardsAPI
from .dashboards_handlers import dashboard_handlers
from .endpoints import EndpointsAPI
from .handlers import api_handlers
from .jobs import JobsAPI
from .jobs_handlers import job_handlers
from .monitor_alerts import MonitorAlertsAPI, monitor_alert_handlers
from .metrics import register as register_metrics


class LakebookApp(ExtensionApp):
    """Serves the catalog, table previews and model endpoints of one workspace under ``/lakebook/api/``."""

    name = "lakebook"
    description = "lakebook: the catalog and lake of a workspace, for the JupyterLab Lake panel"
    load_other_extensions = True

    workspace = Unicode(
        None, allow_none=True, config=True,
        help="Workspace folder (holding lakebook.yaml). Default: LAKEBOOK_WORKSPACE, else the "
             "nearest folder at or above the server's root_dir that holds lakebook.yaml.",
    )

    lake: LakeAPI
    endpoints: EndpointsAPI
    jobs: JobsAPI
    alerts: AlertsAPI
    dashboards: DashboardsAPI
    monitor_alerts: MonitorAlertsAPI

    def initialize_settings(self) -> None:
        self.lake = LakeAPI(self.workspace, self.serverapp.root_dir)
        self.endpoints = EndpointsAPI(self.lake.workspace)
        self.jobs = JobsAPI(self.lake.workspace, self.serverapp.root_dir,
                            allow_hidden=self.serverapp.contents_manager.allow_hidden)
        self.alerts = AlertsAPI(self.lake.workspace)
        self.dashboards = DashboardsAPI(self.lake.workspace, self.serverapp.root_dir)
        self.monitor_alerts = MonitorAlertsAPI(self.lake.workspace)
        register_metrics(self.alerts)  # lakebook's gauges on the server's own /metrics
        try:
            self.log.info("lakebook: workspace %s", self.lake.workspace().root)
        except Exception as exc:  # the server still starts; each API call says what is wrong
            self.log.warning("lakebook: %s", exc)

    def initialize_handlers(self) -> None:
        self.handlers.extend(api_handlers() + job_handlers() + alert_handlers() + dashboard_handlers()
                             + monitor_alert_handlers())

    async def stop_extension(self) -> None:
        self.lake.close()
