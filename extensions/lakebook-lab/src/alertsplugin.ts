/**
 * The Alerts panel in the left sidebar, its tab counting the open alerts.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';

import { ALERTS_PANEL_ID, AlertsPanel } from './alertspanel';
import { alertsIcon } from './icons';

export const OPEN_ALERTS_PANEL = 'lakebook:open-alerts-panel';

export const alertsPanelPlugin: JupyterFrontEndPlugin<void> = {
  id: 'lakebook-lab:alerts-panel',
  description: 'The Alerts panel: the monitor\'s alerts, what they affect, "Ack"; its tab counts the open ones.',
  autoStart: true,
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (app: JupyterFrontEnd, palette: ICommandPalette | null, restorer: ILayoutRestorer | null) => {
    const panel = new AlertsPanel(); // its own title: the bell with the count
    app.shell.add(panel, 'left', { rank: 490 });
    restorer?.add(panel, ALERTS_PANEL_ID);
    app.commands.addCommand(OPEN_ALERTS_PANEL, {
      label: 'Show the Alerts Panel',
      caption: 'Monitor alerts: open ones, what they affect, acknowledge',
      icon: alertsIcon,
      execute: () => app.shell.activateById(ALERTS_PANEL_ID)
    });
    palette?.addItem({ command: OPEN_ALERTS_PANEL, category: 'lakebook' });
    void app.restored.then(() => panel.start());
  }
};
