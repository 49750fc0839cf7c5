/**
 * The Dashboards panel in the left sidebar and "Publish" on the notebook toolbar.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';

import { suggestedDashboardName } from './dashboards';
import { DASHBOARDS_PANEL_ID, DashboardsPanel } from './dashboardspanel';
import { dashboardsIcon } from './icons';
import { addNotebookButton } from './notebookbutton';
import { publishNotebookDialog } from './publishform';

export const OPEN_DASHBOARDS_PANEL = 'lakebook:open-dashboards-panel';
export const PUBLISH_NOTEBOOK = 'lakebook:publish-notebook';

function addPublishCommand(app: JupyterFrontEnd, notebooks: INotebookTracker, panel: DashboardsPanel): void {
  app.commands.addCommand(PUBLISH_NOTEBOOK, {
    label: 'Publish this Notebook as a Dashboard',
    caption: 'Serve this notebook as a Voila dashboard (open and share it from the Dashboards panel)',
    icon: dashboardsIcon,
    isEnabled: () => notebooks.currentWidget !== null,
    execute: async args => {
      const path = args.path ? String(args.path) : notebooks.currentWidget?.context.path;
      const published = path ? await publishNotebookDialog(path, suggestedDashboardName(path)) : null;
      if (published) {
        Notification.success(`Dashboard ${published.name} published`, { autoClose: 5000 });
        app.shell.activateById(DASHBOARDS_PANEL_ID);
        await panel.refresh();
      }
    }
  });
  addNotebookButton(app, notebooks, {
    name: 'lakebook-publish',
    index: 11,
    icon: dashboardsIcon,
    label: 'Publish',
    className: 'lakebook-publish-button',
    tooltip: 'Publish this notebook as a dashboard',
    command: PUBLISH_NOTEBOOK
  });
}

export const dashboardsPanelPlugin: JupyterFrontEndPlugin<void> = {
  id: 'lakebook-lab:dashboards-panel',
  description: 'The Dashboards panel (open, snapshot, share, unpublish) and "Publish" on the notebook toolbar.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const panel = new DashboardsPanel();
    panel.title.icon = dashboardsIcon;
    panel.title.caption = 'Dashboards';
    app.shell.add(panel, 'left', { rank: 480 });
    restorer?.add(panel, DASHBOARDS_PANEL_ID);
    app.commands.addCommand(OPEN_DASHBOARDS_PANEL, {
      label: 'Show the Dashboards Panel',
      caption: 'Published dashboards: open, snapshot, share',
      icon: dashboardsIcon,
      execute: () => app.shell.activateById(DASHBOARDS_PANEL_ID)
    });
    addPublishCommand(app, notebooks, panel);
    for (const command of [OPEN_DASHBOARDS_PANEL, PUBLISH_NOTEBOOK]) {
      palette?.addItem({ command, category: 'lakebook' });
    }
  }
};
